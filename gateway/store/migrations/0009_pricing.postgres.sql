-- Caps, carried excess and redemptions are records of acts: they never change.
CREATE TRIGGER price_caps_frozen BEFORE UPDATE OR DELETE ON price_caps
    FOR EACH ROW EXECUTE FUNCTION circulation_immutable();
CREATE TRIGGER revenue_carries_frozen BEFORE UPDATE OR DELETE ON revenue_carries
    FOR EACH ROW EXECUTE FUNCTION circulation_immutable();
CREATE TRIGGER voucher_redemptions_frozen BEFORE UPDATE OR DELETE ON voucher_redemptions
    FOR EACH ROW EXECUTE FUNCTION circulation_immutable();
