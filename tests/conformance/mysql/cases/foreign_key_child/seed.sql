INSERT INTO owners (id, label) SELECT seq, CONCAT('owner ', seq) FROM seq_1_to_50;
INSERT INTO items (id, owner_id, qty, note) SELECT seq, 1 + seq % 50, seq % 97, CONCAT('n', seq) FROM seq_1_to_2000;
