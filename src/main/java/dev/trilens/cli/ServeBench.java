package dev.trilens.cli;

import com.fasterxml.jackson.databind.ObjectMapper;
import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import dev.trilens.interp.Probe;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.Weights;
import dev.trilens.serve.ProbeServer;
import java.io.PrintWriter;
import java.net.URI;
import java.net.http.HttpClient;
import java.net.http.HttpRequest;
import java.net.http.HttpResponse;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Map;
import java.util.Random;
import java.util.concurrent.ConcurrentLinkedQueue;
import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.concurrent.atomic.AtomicLong;

/**
 * `trilens bench serve`: the latency of {@code POST /api/predict} on full-length sequences, measured by the server
 * (from the request's arrival to its answer, Javalin's request timer) and by a client on the same machine, then a
 * load test: N concurrent clients for a few seconds, every answer checked byte for byte against the
 * {@link Probe#predict} of its sequence. Only the loopback interface is used.
 */
final class ServeBench {
    private static final ObjectMapper JSON = Probe.JSON;
    /** The default warm-up sends at least this many requests. */
    private static final int MIN_WARMUP_REQUESTS = 4000;
    /** Distinct sequences the clients cycle through, each with its expected answer. */
    private static final int POOL = 64;

    private final Weights weights;
    private final int clients;
    private final double seconds;
    private final Integer warmupRuns;
    private final double warmupSeconds;

    /** warmupRuns untimed requests first, or (null) at least warmupSeconds of them, until the times are flat. */
    private final int requests;

    /** requests: how many the latency phase times, one at a time. */
    ServeBench(Weights weights, int clients, double seconds, Integer warmupRuns, double warmupSeconds, int requests) {
        this.requests = requests;
        this.weights = weights;
        this.clients = clients;
        this.seconds = seconds;
        this.warmupRuns = warmupRuns;
        this.warmupSeconds = warmupSeconds;
    }

    /** Returns the exit code: 1 when any answer was wrong. */
    int run(PrintWriter out) throws Exception {
        ModelConfig cfg = weights.cfg;
        int T = cfg.nCtx();
        Probe probe = Probe.of(weights, null);
        Random r = new Random(0);
        byte[][] bodies = new byte[POOL][], expected = new byte[POOL][];
        for (int i = 0; i < POOL; i++) {
            int[] t = new int[T];
            for (int k = 0; k < T; k++) {
                t[k] = r.nextInt(cfg.dVocab());
            }
            bodies[i] = JSON.writeValueAsBytes(Map.of("tokens", t));
            expected[i] = JSON.writeValueAsBytes(probe.predict(t, ProbeServer.DEFAULT_TOP));
        }
        ConcurrentLinkedQueue<Double> serverMs = new ConcurrentLinkedQueue<>();
        java.util.concurrent.atomic.AtomicBoolean recording = new java.util.concurrent.atomic.AtomicBoolean();
        ProbeServer server = new ProbeServer(new ProbeServer.Model(probe, "bench"), null).timed((path, status, ms) -> {
            if (recording.get() && path.equals("/api/predict")) {
                serverMs.add(ms);
            }
        });
        try (ProbeServer s = server.start("127.0.0.1", 0)) {
            URI uri = URI.create(s.url() + "/api/predict");
            out.printf("trilens bench serve: POST /api/predict with %d-token sequences on %s (%s)%n", T, s.url(), cfg);
            out.flush();

            // warm-up: one client until the JIT has compiled the request path (as `bench eval`: at least the
            // minimum time, then until two windows in a row are no faster than the best window before them). A
            // request runs each kernel once, so C2 needs thousands of them: measured after 250 (5 s) the median
            // was 2.5 times what it was after 6000.
            Client warm = new Client(uri, bodies, expected);
            long start = System.nanoTime();
            int warmRuns = 0;
            if (warmupRuns != null) {
                while (warmRuns < warmupRuns) {
                    warm.once(warmRuns++);
                }
            } else {
                double best = Double.MAX_VALUE;
                int flat = 0;
                while (true) {
                    double[] window = new double[200];
                    for (int i = 0; i < window.length; i++) {
                        long a = System.nanoTime();
                        warm.once(warmRuns++);
                        window[i] = System.nanoTime() - a;
                    }
                    Arrays.sort(window);
                    double median = window[window.length / 2];
                    flat = median > 0.97 * best ? flat + 1 : 0;
                    best = Math.min(best, median);
                    double elapsed = (System.nanoTime() - start) / 1e9;
                    if (elapsed >= 60 || (elapsed >= warmupSeconds && warmRuns >= MIN_WARMUP_REQUESTS && flat >= 2)) {
                        break;
                    }
                }
            }
            double warmSeconds = (System.nanoTime() - start) / 1e9;
            if (warm.wrong > 0) {
                throw new TrilensException("the server answered " + warm.wrong + " warm-up requests wrongly");
            }

            // latency: one client, one request at a time
            recording.set(true);
            List<Double> clientMs = new ArrayList<>();
            int n = 0;
            while (n < requests) {
                long a = System.nanoTime();
                warm.once(n++);
                clientMs.add((System.nanoTime() - a) / 1e6);
            }
            recording.set(false);
            double[] sm = sorted(serverMs);
            double[] cm = sorted(clientMs);
            out.printf("latency    1 client, %d requests after %d warm-up (%.0f s): server median %.3f ms, p99 %.3f "
                    + "ms; round trip at the client median %.3f ms, p99 %.3f ms%n", n, warmRuns, warmSeconds,
                    pct(sm, 50), pct(sm, 99), pct(cm, 50), pct(cm, 99));
            out.flush();

            // load: N clients at once, every answer checked
            serverMs.clear();
            recording.set(true);
            ExecutorService pool = Executors.newFixedThreadPool(clients);
            AtomicLong done = new AtomicLong(), wrong = new AtomicLong();
            ConcurrentLinkedQueue<Double> loadMs = new ConcurrentLinkedQueue<>();
            long stop = System.nanoTime() + (long) (seconds * 1e9);
            long l0 = System.nanoTime();
            List<Future<?>> fs = new ArrayList<>();
            for (int c = 0; c < clients; c++) {
                int id = c;
                fs.add(pool.submit(() -> {
                    Client cl = new Client(uri, bodies, expected);
                    int i = id * 7;
                    while (System.nanoTime() < stop) {
                        long a = System.nanoTime();
                        cl.once(i++);
                        loadMs.add((System.nanoTime() - a) / 1e6);
                    }
                    done.addAndGet(cl.count);
                    wrong.addAndGet(cl.wrong);
                    return null;
                }));
            }
            for (Future<?> f : fs) {
                f.get();
            }
            double elapsed = (System.nanoTime() - l0) / 1e9;
            pool.shutdown();
            recording.set(false);
            double[] lm = sorted(loadMs), ls = sorted(serverMs);
            double rps = done.get() / elapsed;
            out.printf("load       %d clients for %.1f s: %d requests, %d wrong, %.0f requests/s; round trip median "
                    + "%.3f ms, p99 %.3f ms; server median %.3f ms, p99 %.3f ms%n", clients, elapsed, done.get(),
                    wrong.get(), rps, pct(lm, 50), pct(lm, 99), pct(ls, 50), pct(ls, 99));
            out.printf("serve_predict_median_ms=%.3f serve_predict_p99_ms=%.3f serve_load_rps=%.0f serve_load_wrong=%d%n",
                    pct(sm, 50), pct(sm, 99), rps, wrong.get());
            out.flush();
            return wrong.get() == 0 ? 0 : 1;
        }
    }

    /** One keep-alive HTTP client sending the pooled sequences in turn and checking each answer. */
    private static final class Client {
        final HttpClient http = HttpClient.newBuilder().version(HttpClient.Version.HTTP_1_1)
                .connectTimeout(Duration.ofSeconds(10)).build();
        final URI uri;
        final byte[][] bodies, expected;
        long count, wrong;

        Client(URI uri, byte[][] bodies, byte[][] expected) {
            this.uri = uri;
            this.bodies = bodies;
            this.expected = expected;
        }

        void once(int i) throws Exception {
            int k = Math.floorMod(i, bodies.length);
            HttpRequest req = HttpRequest.newBuilder(uri).timeout(Duration.ofSeconds(30))
                    .header("Content-Type", "application/json")
                    .POST(HttpRequest.BodyPublishers.ofByteArray(bodies[k])).build();
            HttpResponse<byte[]> resp = http.send(req, HttpResponse.BodyHandlers.ofByteArray());
            count++;
            if (resp.statusCode() != 200 || !Arrays.equals(resp.body(), expected[k])) {
                wrong++;
            }
        }
    }

    private static double[] sorted(java.util.Collection<Double> xs) {
        double[] a = new double[xs.size()];
        int i = 0;
        for (double x : xs) {
            a[i++] = x;
        }
        Arrays.sort(a);
        return a;
    }

    /** The q-th percentile (nearest rank). */
    private static double pct(double[] sorted, double q) {
        if (sorted.length == 0) {
            return Double.NaN;
        }
        int idx = (int) Math.ceil(q / 100.0 * sorted.length) - 1;
        return sorted[Math.max(0, Math.min(sorted.length - 1, idx))];
    }
}
