package dev.trilens.model;

import java.util.concurrent.ExecutorService;
import java.util.concurrent.Executors;
import java.util.concurrent.Future;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.ExecutionException;

/** The one place threads are made: a shared daemon pool, and a parallel loop over index ranges. */
public final class Parallel {

    /** Body of a parallel loop: worker index (0..threads-1, for per-worker scratch) and a half-open range. */
    @FunctionalInterface
    public interface RangeBody {
        void run(int worker, int from, int to);
    }

    /** Body of a dynamically scheduled loop: worker index (for per-worker scratch) and one item. */
    @FunctionalInterface
    public interface ItemBody {
        void run(int worker, int item);
    }

    private static final int DEFAULT_THREADS = Runtime.getRuntime().availableProcessors();
    private static volatile int threads = DEFAULT_THREADS;
    private static ExecutorService pool;
    /**
     * Set on a thread while it runs a parallel loop's body: a loop nested inside one (a forward pass inside a
     * per-snapshot loop) runs on that thread, since the outer loop already keeps every core busy.
     */
    private static final ThreadLocal<Boolean> IN_LOOP = ThreadLocal.withInitial(() -> false);

    private Parallel() {
    }

    public static int threads() {
        return threads;
    }

    /** Sets how many threads parallel loops use (the CLI's --threads). */
    public static synchronized void setThreads(int n) {
        if (n < 1) {
            throw new IllegalArgumentException("threads must be >= 1, got " + n);
        }
        threads = n;
    }

    private static synchronized ExecutorService pool() {
        if (pool == null) {
            pool = Executors.newCachedThreadPool(r -> {
                Thread t = new Thread(r, "trilens-worker");
                t.setDaemon(true);
                return t;
            });
        }
        return pool;
    }

    /**
     * Runs body for every item in [0, n), each worker taking the next unclaimed item, so a worker that is slowed down
     * (another process on its core, a late wake-up) takes fewer items instead of holding up the rest. Which worker
     * runs an item varies from run to run; callers that need reproducible results must make each item's result
     * independent of the worker (per-worker scratch only).
     */
    public static void forEachItem(int n, ItemBody body) {
        java.util.concurrent.atomic.AtomicInteger next = new java.util.concurrent.atomic.AtomicInteger();
        forRange(Math.min(threads, n), (worker, from, to) -> {
            for (int item = next.getAndIncrement(); item < n; item = next.getAndIncrement()) {
                body.run(worker, item);
            }
        });
    }

    /**
     * Runs body over [0, n) split into at most threads() contiguous ranges, one per worker; the caller's thread
     * takes the first range. Exceptions in any worker are rethrown here. Called from inside another loop's body, it
     * runs the whole range there, as worker 0.
     */
    public static void forRange(int n, RangeBody body) {
        int workers = IN_LOOP.get() ? 1 : Math.min(threads, n);
        if (workers <= 1) {
            if (n > 0) {
                body.run(0, 0, n);
            }
            return;
        }
        List<Future<?>> futures = new ArrayList<>(workers - 1);
        for (int w = 1; w < workers; w++) {
            int worker = w;
            int from = (int) ((long) n * w / workers);
            int to = (int) ((long) n * (w + 1) / workers);
            futures.add(pool().submit(() -> inLoop(body, worker, from, to)));
        }
        Throwable failure = null;
        try {
            inLoop(body, 0, 0, (int) ((long) n / workers));
        } catch (RuntimeException | Error e) {
            failure = e;
        }
        for (Future<?> f : futures) {
            try {
                f.get();
            } catch (ExecutionException e) {
                if (failure == null) {
                    failure = e.getCause();
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                if (failure == null) {
                    failure = e;
                }
            }
        }
        if (failure instanceof RuntimeException re) {
            throw re;
        }
        if (failure instanceof Error err) {
            throw err;
        }
        if (failure != null) {
            throw new IllegalStateException(failure);
        }
    }

    private static void inLoop(RangeBody body, int worker, int from, int to) {
        IN_LOOP.set(true);
        try {
            body.run(worker, from, to);
        } finally {
            IN_LOOP.set(false);
        }
    }
}
