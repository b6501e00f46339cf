INSERT INTO items (id, name, qty, flag) SELECT seq, CONCAT('item ', seq), seq % 97, 1 + seq % 5 FROM seq_1_to_2000;
