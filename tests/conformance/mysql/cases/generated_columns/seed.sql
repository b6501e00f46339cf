INSERT INTO items (id, name, qty) SELECT seq, CONCAT('item ', seq), seq % 97 FROM seq_1_to_2000;
