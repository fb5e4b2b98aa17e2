package dev.trilens.io;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;

import dev.trilens.TrilensException;
import dev.trilens.cli.Main;
import java.io.BufferedReader;
import java.io.ByteArrayOutputStream;
import java.io.InputStreamReader;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.concurrent.TimeUnit;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

class OutputLockTest {
    @TempDir
    Path tmp;

    /** A second process holding a folder's lock until its standard input closes: another trilens mid-run. */
    public static final class Holder {
        public static void main(String[] args) throws Exception {
            try (OutputLock lock = OutputLock.acquire(Path.of(args[0]), "train")) {
                System.out.println("locked");
                System.out.flush();
                while (System.in.read() >= 0) {
                    // hold until the parent closes our stdin or dies
                }
            }
        }
    }

    /** A process that takes a folder's lock, lets it go, and lives on until its standard input closes. */
    public static final class Releaser {
        public static void main(String[] args) throws Exception {
            OutputLock.acquire(Path.of(args[0]), "train").close();
            System.out.println("released");
            System.out.flush();
            while (System.in.read() >= 0) {
                // live on, as a process that goes on to other work
            }
        }
    }

    @Test
    void aReleasedLockIsNotRemovedWhenItsFormerHolderExits() throws Exception {
        // the exit hook removes the lock file of a process stopped mid-run; one that released its lock must not take
        // the file of the writer that holds the folder now
        Path dir = tmp.resolve("handed-over");
        Process former = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("java.class.path"), Releaser.class.getName(), dir.toString()).start();
        assertThat(new BufferedReader(new InputStreamReader(former.getInputStream(), StandardCharsets.UTF_8))
                .readLine()).isEqualTo("released");
        try (OutputLock now = OutputLock.acquire(dir, "analyze")) {
            former.getOutputStream().close();
            assertThat(former.waitFor(30, TimeUnit.SECONDS)).isTrue();
            assertThat(dir.resolve(OutputLock.FILE)).exists();
        }
    }

    @Test
    void oneWriterPerFolderInThisProcess() {
        Path dir = tmp.resolve("out");
        try (OutputLock first = OutputLock.acquire(dir, "analyze")) {
            assertThatThrownBy(() -> OutputLock.acquire(dir, "train")).isInstanceOf(TrilensException.class)
                    .hasMessageContaining(dir + " is in use by another trilens process (pid "
                            + ProcessHandle.current().pid() + " analyze)");
        }
        // released: the file is gone and the next writer takes the folder
        assertThat(dir.resolve(OutputLock.FILE)).doesNotExist();
        OutputLock.acquire(dir, "train").close();
    }

    @Test
    void aSecondTrainIntoTheSameFolderIsRefusedWhileTheFirstRuns() throws Exception {
        Path dir = tmp.resolve("run");
        Process holder = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("java.class.path"), Holder.class.getName(), dir.toString())
                .redirectErrorStream(true).start();
        try {
            BufferedReader r = new BufferedReader(new InputStreamReader(holder.getInputStream(),
                    StandardCharsets.UTF_8));
            assertThat(r.readLine()).isEqualTo("locked");
            ByteArrayOutputStream err = new ByteArrayOutputStream();
            PrintStream saved = System.err;
            int code;
            System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
            try {
                code = Main.execute("train", "--preset", "quick", "--epochs", "1", "--out", dir.toString());
            } finally {
                System.setErr(saved);
            }
            String msg = err.toString(StandardCharsets.UTF_8).strip();
            assertThat(code).isEqualTo(1);
            assertThat(msg).doesNotContain("\n").contains("is in use by another trilens process (pid "
                    + holder.pid() + " train)");
            assertThat(dir.resolve("metrics.jsonl")).doesNotExist();
        } finally {
            holder.getOutputStream().close();
            assertThat(holder.waitFor(30, TimeUnit.SECONDS)).isTrue();
        }
        // a holder killed outright leaves its file, whose lock the system released: the folder is free again
        Process killed = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "-cp", System.getProperty("java.class.path"), Holder.class.getName(), dir.toString()).start();
        assertThat(new BufferedReader(new InputStreamReader(killed.getInputStream(), StandardCharsets.UTF_8))
                .readLine()).isEqualTo("locked");
        killed.destroyForcibly().waitFor(30, TimeUnit.SECONDS);
        assertThat(dir.resolve(OutputLock.FILE)).exists();
        OutputLock.acquire(dir, "train").close();
    }
}
