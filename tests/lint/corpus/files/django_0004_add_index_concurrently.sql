--
-- Concurrently create index shop_order_created_at_idx on field(s) created_at of model order
--
CREATE INDEX CONCURRENTLY "shop_order_created_at_idx" ON "shop_order" ("created_at");
