BEGIN;
--
-- Alter field name on customer
--
ALTER TABLE "shop_customer" ALTER COLUMN "name" TYPE varchar(200);
--
-- Add field referrer to order
--
ALTER TABLE "shop_order" ADD COLUMN "referrer_id" bigint DEFAULT 1 NOT NULL CONSTRAINT "shop_order_referrer_id_5c1d2e3f_fk_shop_customer_id" REFERENCES "shop_customer"("id") DEFERRABLE INITIALLY DEFERRED; SET CONSTRAINTS "shop_order_referrer_id_5c1d2e3f_fk_shop_customer_id" IMMEDIATE;
ALTER TABLE "shop_order" ALTER COLUMN "referrer_id" DROP DEFAULT;
CREATE INDEX "shop_order_referrer_id_5c1d2e3f" ON "shop_order" ("referrer_id");
--
-- Remove field total from order
--
ALTER TABLE "shop_order" DROP COLUMN "total" CASCADE;
--
-- Rename field created on order to created_at
--
ALTER TABLE "shop_order" RENAME COLUMN "created" TO "created_at";
COMMIT;
