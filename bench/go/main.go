// The Go baseline of bench/run: a /healthz handler as a Go service writes
// it by the book, standard library only. Serves on BENCH_ADDR; BENCH_LOAD
// puts the same load on the process as on the Rust services (idle, busy:
// goroutines that spin 1 ms and yield, block: goroutines that never yield).
package main

import (
	"context"
	"log"
	"net/http"
	"os"
	"runtime"
	"time"
)

func healthz(w http.ResponseWriter, r *http.Request) {
	ctx, cancel := context.WithTimeout(r.Context(), 100*time.Millisecond)
	defer cancel()
	if runtime.NumGoroutine() > 5000 {
		http.Error(w, "too many goroutines", http.StatusServiceUnavailable)
		return
	}
	select {
	case <-ctx.Done():
		http.Error(w, "timeout", http.StatusServiceUnavailable)
		return
	default:
	}
	w.WriteHeader(http.StatusOK)
	w.Write([]byte("ok"))
}

func spin(d time.Duration) {
	start := time.Now()
	for time.Since(start) < d {
	}
}

func load() {
	procs := runtime.GOMAXPROCS(0)
	switch os.Getenv("BENCH_LOAD") {
	case "", "idle":
	case "busy":
		for i := 0; i < 4*procs; i++ {
			go func() {
				for {
					spin(time.Millisecond)
					runtime.Gosched()
				}
			}()
		}
	case "block":
		for i := 0; i < 2*procs; i++ {
			go func() {
				for {
				}
			}()
		}
	default:
		log.Fatalf("BENCH_LOAD must be idle, busy or block, not %q", os.Getenv("BENCH_LOAD"))
	}
}

func main() {
	addr := os.Getenv("BENCH_ADDR")
	if addr == "" {
		addr = "127.0.0.1:8080"
	}
	load()
	http.HandleFunc("/healthz", healthz)
	log.Fatal(http.ListenAndServe(addr, nil))
}
