INSERT INTO items (id, name, qty, note, legacy)
SELECT seq, CONCAT('item ', seq), seq % 97, IF(seq % 3 = 0, NULL, CONCAT('n', seq)), 'old'
FROM seq_1_to_2000;
