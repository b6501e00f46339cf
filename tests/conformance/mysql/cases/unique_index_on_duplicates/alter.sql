ADD UNIQUE KEY qty_uq (qty)
