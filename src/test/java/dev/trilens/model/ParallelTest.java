package dev.trilens.model;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import java.util.concurrent.atomic.AtomicIntegerArray;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.Test;

class ParallelTest {
    private final int savedThreads = Parallel.threads();

    @AfterEach
    void restoreThreads() {
        Parallel.setThreads(savedThreads);
    }

    @Test
    void forEachItemRunsEveryItemOnceWithAValidWorkerIndex() {
        for (int threads : new int[] {1, 2, 5}) {
            Parallel.setThreads(threads);
            AtomicIntegerArray runs = new AtomicIntegerArray(37);
            AtomicIntegerArray badWorker = new AtomicIntegerArray(1);
            Parallel.forEachItem(37, (worker, item) -> {
                runs.incrementAndGet(item);
                if (worker < 0 || worker >= threads) {
                    badWorker.set(0, 1);
                }
            });
            for (int i = 0; i < 37; i++) {
                assertThat(runs.get(i)).as("item %d with %d threads", i, threads).isEqualTo(1);
            }
            assertThat(badWorker.get(0)).isZero();
        }
    }

    @Test
    void forEachItemRethrowsAWorkersFailure() {
        Parallel.setThreads(2);
        assertThatThrownBy(() -> Parallel.forEachItem(10, (worker, item) -> {
            if (item == 7) {
                throw new IllegalStateException("item 7 failed");
            }
        })).isInstanceOf(IllegalStateException.class).hasMessage("item 7 failed");
    }

    @Test
    void aLoopInsideALoopRunsOnTheCallingThreadAsWorkerZero() {
        Parallel.setThreads(3);
        AtomicIntegerArray runs = new AtomicIntegerArray(6 * 11);
        AtomicIntegerArray strayInner = new AtomicIntegerArray(1);
        Parallel.forEachItem(6, (worker, outer) -> {
            Thread caller = Thread.currentThread();
            Parallel.forRange(11, (inner, from, to) -> {
                if (Thread.currentThread() != caller || inner != 0 || from != 0 || to != 11) {
                    strayInner.set(0, 1);
                }
                for (int i = from; i < to; i++) {
                    runs.incrementAndGet(outer * 11 + i);
                }
            });
        });
        assertThat(strayInner.get(0)).as("an inner loop left its caller's thread").isZero();
        for (int i = 0; i < runs.length(); i++) {
            assertThat(runs.get(i)).as("item %d", i).isEqualTo(1);
        }
        // after the outer loop, loops split across workers again
        java.util.Set<Long> after = java.util.concurrent.ConcurrentHashMap.newKeySet();
        Parallel.forRange(3, (worker, from, to) -> {
            after.add(Thread.currentThread().getId());
            try {
                Thread.sleep(50);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        });
        assertThat(after).hasSize(3);
    }
}
