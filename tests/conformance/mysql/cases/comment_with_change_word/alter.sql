MODIFY note VARCHAR(32) NULL comment 'to CHANGE note memo, one day'
