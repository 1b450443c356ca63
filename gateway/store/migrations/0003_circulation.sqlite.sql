-- What was submitted, published or invoiced never changes (R-BI-04); triggers hold it.
CREATE TRIGGER product_versions_frozen BEFORE UPDATE OF definition, definition_hash ON product_versions BEGIN SELECT RAISE(ABORT, 'product versions are immutable'); END;
CREATE TRIGGER invoices_no_update BEFORE UPDATE ON invoices BEGIN SELECT RAISE(ABORT, 'stored invoices are immutable'); END;
CREATE TRIGGER invoices_no_delete BEFORE DELETE ON invoices BEGIN SELECT RAISE(ABORT, 'stored invoices are immutable'); END;
CREATE TRIGGER invoice_items_no_update BEFORE UPDATE ON invoice_items BEGIN SELECT RAISE(ABORT, 'invoice items are immutable'); END;
CREATE TRIGGER invoice_items_no_delete BEFORE DELETE ON invoice_items BEGIN SELECT RAISE(ABORT, 'invoice items are immutable'); END;
