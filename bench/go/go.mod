module lifecycle.invalid/bench/healthz

go 1.19
