-- no key to aim at: inserts, and updates and deletes by a value every copy of a row shares
INSERT INTO {t} (kind, amount, note) VALUES (:s, :n, :s)
UPDATE {t} SET note = :s WHERE amount = :n
DELETE FROM {t} WHERE amount = :n
