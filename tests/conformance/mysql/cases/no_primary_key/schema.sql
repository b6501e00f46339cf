CREATE TABLE events (
  kind VARCHAR(32) NOT NULL,
  amount INT NOT NULL,
  note VARCHAR(32) NULL,
  KEY amount_idx (amount)
) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4;
