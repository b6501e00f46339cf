-- owners are added and relabelled, never deleted (items point at them)
INSERT INTO {t} (id, label) VALUES (:new, :s)
UPDATE {t} SET label = :s WHERE id = :id
