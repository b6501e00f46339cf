INSERT INTO {t} (id, owner_id, qty, note) VALUES (:new, 1 + :n % 50, :n, :s)
UPDATE {t} SET qty = :n, owner_id = 1 + :n % 50 WHERE id = :id
DELETE FROM {t} WHERE id = :id
