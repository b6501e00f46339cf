--
-- Add field note to order
--
ALTER TABLE `shop_order` ADD COLUMN `note` longtext NULL;
--
-- Add field warehouse to order
--
ALTER TABLE `shop_order` ADD COLUMN `warehouse_id` bigint NULL , ADD CONSTRAINT `shop_order_warehouse_id_1d2c3b4a_fk_shop_warehouse_id` FOREIGN KEY (`warehouse_id`) REFERENCES `shop_warehouse`(`id`);
--
-- Alter field name on customer
--
ALTER TABLE `shop_customer` MODIFY `name` varchar(200) NOT NULL;
