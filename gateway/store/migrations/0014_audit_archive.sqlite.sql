-- R-AD-03 with retention: an entry may be deleted only once the floor has passed it (archived).
DROP TRIGGER audit_log_no_delete;
CREATE TRIGGER audit_log_no_delete BEFORE DELETE ON audit_log WHEN OLD.seq > (SELECT seq FROM audit_floor WHERE id = 1) BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER audit_floor_only_grows BEFORE UPDATE ON audit_floor WHEN NEW.seq < OLD.seq OR NEW.seq > (SELECT seq FROM audit_head WHERE id = 1) BEGIN SELECT RAISE(ABORT, 'audit_floor only grows, up to the chain head'); END;
