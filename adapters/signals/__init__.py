"""Signal sources: each reads one number worth throttling on and implements `orchestrator.ports.SignalSource`.

| module | sources | unit |
|---|---|---|
| `pg_replica_lag` | `PgReplicaLagSource` (heartbeat), `PgReplicaByteLagSource` (WAL bytes); `PgHeartbeat` | s, bytes |
| `mysql_replica_lag` | `MysqlReplicaLagSource` (heartbeat + replication threads); `MysqlHeartbeat` | s |
| `prometheus` | `PrometheusQuerySource` (a PromQL instant query, e.g. an error ratio) | ratio |
| `load` | `PgActiveSessionsSource`, `PgLongestTransactionSource`, `MysqlThreadsRunningSource` | count, s |
| `custom_sql` | `CustomSqlSource` (one scalar from PostgreSQL or MySQL) | caller's |
| `http_check` | `HttpCheckSource` (0.0 for a 2xx answer, 1.0 otherwise) | failing |

Shared: `base` (the never-raising, time-bounded `GuardedSource`; error text without secrets),
`connections` (one lazily opened connection per endpoint, dropped after any failure; PyMySQL always in
a worker thread) and `heartbeat` (lag from beats on the primary's clock alone; see its docstring).

Every `sample()` is bounded by the source's timeout and never raises: a failure is a Sample whose value
is None and whose `error` says why, which the throttle decision treats as "hold". Errors and details
name endpoints as host:port; passwords and DSNs never appear in them.
"""
