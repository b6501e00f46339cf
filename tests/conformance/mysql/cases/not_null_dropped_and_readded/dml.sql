INSERT INTO {t} (id, name, qty) VALUES (:new, :s, :n)
UPDATE {t} SET qty = :n WHERE id = :id
DELETE FROM {t} WHERE id = :id
