-- Caps, carried excess and redemptions are records of acts: they never change.
CREATE TRIGGER price_caps_no_update BEFORE UPDATE ON price_caps BEGIN SELECT RAISE(ABORT, 'price caps are immutable'); END;
CREATE TRIGGER price_caps_no_delete BEFORE DELETE ON price_caps BEGIN SELECT RAISE(ABORT, 'price caps are immutable'); END;
CREATE TRIGGER revenue_carries_no_update BEFORE UPDATE ON revenue_carries BEGIN SELECT RAISE(ABORT, 'carried revenue is immutable'); END;
CREATE TRIGGER revenue_carries_no_delete BEFORE DELETE ON revenue_carries BEGIN SELECT RAISE(ABORT, 'carried revenue is immutable'); END;
CREATE TRIGGER voucher_redemptions_no_update BEFORE UPDATE ON voucher_redemptions BEGIN SELECT RAISE(ABORT, 'redemptions are immutable'); END;
CREATE TRIGGER voucher_redemptions_no_delete BEFORE DELETE ON voucher_redemptions BEGIN SELECT RAISE(ABORT, 'redemptions are immutable'); END;
