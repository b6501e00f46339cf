"""MySQL and MariaDB: the TargetDatabase port over PyMySQL, direct online DDL, and a workload stand-in."""
