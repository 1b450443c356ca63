-- What was submitted, published or invoiced never changes (R-BI-04); triggers hold it.
CREATE OR REPLACE FUNCTION circulation_immutable() RETURNS trigger LANGUAGE plpgsql AS $$
BEGIN
    RAISE EXCEPTION '% is immutable', TG_TABLE_NAME;
END;
$$;
CREATE TRIGGER product_versions_frozen BEFORE UPDATE OF definition, definition_hash ON product_versions
    FOR EACH ROW EXECUTE FUNCTION circulation_immutable();
CREATE TRIGGER invoices_frozen BEFORE UPDATE OR DELETE ON invoices
    FOR EACH ROW EXECUTE FUNCTION circulation_immutable();
CREATE TRIGGER invoice_items_frozen BEFORE UPDATE OR DELETE ON invoice_items
    FOR EACH ROW EXECUTE FUNCTION circulation_immutable();
