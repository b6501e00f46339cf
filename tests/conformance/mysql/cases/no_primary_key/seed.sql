INSERT INTO events (kind, amount, note)
SELECT ELT(1 + seq % 3, 'click', 'view', 'buy'), seq % 500, IF(seq % 7 = 0, NULL, CONCAT('e', seq % 11))
FROM seq_1_to_2000;
