"""Reading Prometheus to decide a rollout: the health check, the go/no-go verdict, the stage report with
its charts, and the backtest of the alert rules over past data."""
