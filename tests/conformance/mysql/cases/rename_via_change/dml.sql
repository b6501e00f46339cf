-- the application names neither note nor memo while the rename is under way
INSERT INTO {t} (id, name, qty) VALUES (:new, :s, :n)
UPDATE {t} SET qty = :n WHERE id = :id
UPDATE {t} SET name = :s WHERE id = :id
DELETE FROM {t} WHERE id = :id
