-- R-AD-03 with retention: an entry may be deleted only once the floor has passed it (archived).
CREATE OR REPLACE FUNCTION audit_log_append_only() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF TG_OP = 'DELETE' AND OLD.seq <= (SELECT seq FROM audit_floor WHERE id = 1) THEN
        RETURN OLD;
    END IF;
    RAISE EXCEPTION 'audit_log is append-only';
END;
$$;
CREATE OR REPLACE FUNCTION audit_floor_only_grows() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    IF NEW.seq < OLD.seq OR NEW.seq > (SELECT seq FROM audit_head WHERE id = 1) THEN
        RAISE EXCEPTION 'audit_floor only grows, up to the chain head';
    END IF;
    RETURN NEW;
END;
$$;
CREATE TRIGGER audit_floor_no_shrink BEFORE UPDATE ON audit_floor
    FOR EACH ROW EXECUTE FUNCTION audit_floor_only_grows();
