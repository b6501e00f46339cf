-- the application: inserts, updates and deletes on the columns both versions know
INSERT INTO {t} (id, name, qty, note) VALUES (:new, :s, :n, :s)
UPDATE {t} SET qty = :n, note = :s WHERE id = :id
UPDATE {t} SET name = :s WHERE id = :id
DELETE FROM {t} WHERE id = :id
