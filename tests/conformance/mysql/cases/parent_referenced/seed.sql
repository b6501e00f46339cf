INSERT INTO owners (id, label) SELECT seq, CONCAT('owner ', seq) FROM seq_1_to_1000;
INSERT INTO items (id, owner_id) SELECT seq, 1 + seq % 1000 FROM seq_1_to_500;
