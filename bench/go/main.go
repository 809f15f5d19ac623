// Command zchan-go-bench runs zchan's in-process benchmark cases with Go channels, as the
// reference zchan is measured against. It mirrors bench/inproc_bench.cpp case by case:
// same item counts, same roles (who sends, who receives, what is timed), a fresh channel
// per iteration. Keep the two in step.
//
// An item is one value received; for ping-pong, one round trip. Each case reports
// items_per_second. Output is JSON shaped like Google Benchmark's (--benchmark_format=json),
// with names go/<case>, so bench/run_inproc reads both with the same code.
//
// The C++ side starts its threads before the clock and releases them with a latch; here
// goroutines are started after the clock, since starting one costs well under a microsecond
// against milliseconds per iteration.
//
// GOMAXPROCS is 2 unless the environment sets it (the benchmark machine has 2 cores).
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"regexp"
	"runtime"
	"sort"
	"sync"
	"time"
)

// caseRun runs one iteration over n items and returns the measured time and the sum of the
// values received (each case sends 0..n-1 exactly once).
type caseRun func(n int) (time.Duration, int64)

type benchCase struct {
	name  string
	items int // per iteration, before -items_scale
	run   caseRun
}

var cases = []benchCase{
	{"spsc_cap1024", 100_000, func(n int) (time.Duration, int64) { return spsc(n, 1024) }},
	{"spsc_cap1", 100_000, func(n int) (time.Duration, int64) { return spsc(n, 1) }},
	{"spsc_unbuffered", 100_000, func(n int) (time.Duration, int64) { return spsc(n, 0) }},
	{"pingpong_unbuffered", 100_000, pingpong},
	{"mpmc4x4_cap1024", 100_000, mpmc},
	{"range_1m", 1_000_000, rangeClosed},
}

// spsc: one sender goroutine; the timing goroutine receives n values.
func spsc(n, capacity int) (time.Duration, int64) {
	ch := make(chan int, capacity)
	t0 := time.Now()
	go func() {
		for i := 0; i < n; i++ {
			ch <- i
		}
	}()
	var sum int64
	for i := 0; i < n; i++ {
		sum += int64(<-ch)
	}
	return time.Since(t0), sum
}

// pingpong: two unbuffered channels; the timing goroutine sends ping, a partner answers pong.
func pingpong(n int) (time.Duration, int64) {
	ping := make(chan int)
	pong := make(chan int)
	t0 := time.Now()
	go func() {
		for i := 0; i < n; i++ {
			pong <- <-ping
		}
	}()
	var sum int64
	for i := 0; i < n; i++ {
		ping <- i
		sum += int64(<-pong)
	}
	return time.Since(t0), sum
}

// mpmc: 4 senders send n/4 values each, 4 receivers receive n/4 values each, capacity 1024.
func mpmc(n int) (time.Duration, int64) {
	const senders, receivers = 4, 4
	ch := make(chan int, 1024)
	perSender, perReceiver := n/senders, n/receivers
	sums := make([]int64, receivers)
	var wg sync.WaitGroup
	t0 := time.Now()
	wg.Add(senders + receivers)
	for s := 0; s < senders; s++ {
		go func(first int) {
			defer wg.Done()
			for i := first; i < first+perSender; i++ {
				ch <- i
			}
		}(s * perSender)
	}
	for r := 0; r < receivers; r++ {
		go func(r int) {
			defer wg.Done()
			var sum int64
			for i := 0; i < perReceiver; i++ {
				sum += int64(<-ch)
			}
			sums[r] = sum
		}(r)
	}
	wg.Wait()
	d := time.Since(t0)
	var sum int64
	for _, s := range sums {
		sum += s
	}
	return d, sum
}

// rangeClosed: fill a channel of capacity n and close it (not timed), then range over it.
func rangeClosed(n int) (time.Duration, int64) {
	ch := make(chan int, n)
	for i := 0; i < n; i++ {
		ch <- i
	}
	close(ch)
	t0 := time.Now()
	var sum int64
	for v := range ch {
		sum += int64(v)
	}
	return time.Since(t0), sum
}

// run is one Google-Benchmark-like result row.
type run struct {
	Name            string  `json:"name"`
	RunName         string  `json:"run_name"`
	RunType         string  `json:"run_type"`
	Repetitions     int     `json:"repetitions"`
	RepetitionIndex int     `json:"repetition_index,omitempty"`
	AggregateName   string  `json:"aggregate_name,omitempty"`
	Iterations      int     `json:"iterations"`
	RealTime        float64 `json:"real_time"`
	TimeUnit        string  `json:"time_unit"`
	ItemsPerSecond  float64 `json:"items_per_second"`
	ItemsPerIter    int     `json:"items_per_iteration"`
	Error           string  `json:"error_message,omitempty"`
}

type report struct {
	Context    map[string]interface{} `json:"context"`
	Benchmarks []run                  `json:"benchmarks"`
}

// measure runs one repetition: a warm-up iteration, then iterations until minTime of measured
// time has accumulated (like --benchmark_min_time).
func measure(c benchCase, n int, minTime time.Duration) (iters int, total time.Duration, err string) {
	want := int64(n) * int64(n-1) / 2
	if _, sum := c.run(n); sum != want {
		return 0, 0, "received values do not sum to what was sent"
	}
	for iters == 0 || total < minTime {
		d, sum := c.run(n)
		if sum != want {
			return iters, total, "received values do not sum to what was sent"
		}
		total += d
		iters++
	}
	return iters, total, ""
}

func median(xs []float64) float64 {
	s := append([]float64(nil), xs...)
	sort.Float64s(s)
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

func main() {
	minTime := flag.Float64("benchtime", 0.5, "minimum measured seconds per case and repetition")
	count := flag.Int("count", 1, "repetitions per case; >1 adds mean and median rows")
	filter := flag.String("filter", ".", "regexp over go/<case> names to run")
	scale := flag.Float64("items_scale", 1.0, "multiplies every case's items per iteration")
	out := flag.String("out", "", "also write the JSON report to this file")
	flag.Parse()

	if os.Getenv("GOMAXPROCS") == "" {
		runtime.GOMAXPROCS(2)
	}
	re, err := regexp.Compile(*filter)
	if err != nil {
		fmt.Fprintln(os.Stderr, "bad -filter:", err)
		os.Exit(2)
	}

	rep := report{Context: map[string]interface{}{
		"date":         time.Now().Format(time.RFC3339),
		"executable":   os.Args[0],
		"go_version":   runtime.Version(),
		"num_cpus":     runtime.NumCPU(),
		"gomaxprocs":   runtime.GOMAXPROCS(0),
		"items_scale":  *scale,
		"min_time_sec": *minTime,
	}}
	failed := false
	for _, c := range cases {
		name := "go/" + c.name
		if !re.MatchString(name) {
			continue
		}
		n := int(float64(c.items) * *scale)
		n -= n % 4
		if n < 4 {
			n = 4
		}
		var rates, times []float64
		for r := 0; r < *count; r++ {
			iters, total, msg := measure(c, n, time.Duration(*minTime*float64(time.Second)))
			row := run{Name: name, RunName: name, RunType: "iteration", Repetitions: *count,
				RepetitionIndex: r, Iterations: iters, TimeUnit: "ms", ItemsPerIter: n, Error: msg}
			if msg != "" {
				failed = true
			} else {
				row.RealTime = total.Seconds() * 1e3 / float64(iters)
				row.ItemsPerSecond = float64(iters) * float64(n) / total.Seconds()
				rates = append(rates, row.ItemsPerSecond)
				times = append(times, row.RealTime)
			}
			rep.Benchmarks = append(rep.Benchmarks, row)
			fmt.Fprintf(os.Stderr, "%-24s %10.3f ms/iter %14.0f items/s  (%d iterations)\n",
				name, row.RealTime, row.ItemsPerSecond, iters)
		}
		if *count > 1 && len(rates) > 0 {
			var sr, st float64
			for i := range rates {
				sr += rates[i]
				st += times[i]
			}
			k := float64(len(rates))
			for _, agg := range []struct {
				name       string
				rate, time float64
			}{{"mean", sr / k, st / k}, {"median", median(rates), median(times)}} {
				rep.Benchmarks = append(rep.Benchmarks, run{Name: name + "_" + agg.name,
					RunName: name, RunType: "aggregate", Repetitions: *count,
					AggregateName: agg.name, Iterations: len(rates), RealTime: agg.time,
					TimeUnit: "ms", ItemsPerSecond: agg.rate, ItemsPerIter: n})
			}
		}
	}

	js, err := json.MarshalIndent(rep, "", "  ")
	if err != nil {
		panic(err)
	}
	js = append(js, '\n')
	os.Stdout.Write(js)
	if *out != "" {
		if err := os.WriteFile(*out, js, 0o644); err != nil {
			fmt.Fprintln(os.Stderr, err)
			os.Exit(1)
		}
	}
	if failed {
		os.Exit(1)
	}
}
