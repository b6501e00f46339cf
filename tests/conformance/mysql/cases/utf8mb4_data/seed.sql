INSERT INTO items (id, name, qty, note, legacy)
SELECT seq, CONCAT(ELT(1 + seq % 5, '日本語 ', 'emoji 🎉🙂 ', 'café crème ', 'Ελληνικά ', 'ß𝔘 '), seq), seq % 97,
       ELT(1 + seq % 3, '😀', NULL, 'ñ'), 'old'
FROM seq_1_to_2000;
