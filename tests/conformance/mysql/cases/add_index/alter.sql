ADD INDEX qty_idx (qty)
