package dev.trilens.io;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.assertThatThrownBy;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.trilens.TrilensException;
import java.io.IOException;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.stream.Stream;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Writes and locks close every descriptor they open: compare and serve write and lock many times in one process. */
class FileDescriptorsTest {
    private static final Path FDS = Path.of("/proc/self/fd");

    @TempDir
    Path dir;

    private static long open() throws IOException {
        try (Stream<Path> s = Files.list(FDS)) {
            return s.count();
        }
    }

    private void writeAndLock() {
        AtomicFiles.write(dir.resolve("m.bin"), out -> out.write(1));
        Path out = dir.resolve("out");
        try (OutputLock lock = OutputLock.acquire(out, "train")) {
            assertThatThrownBy(() -> OutputLock.acquire(out, "analyze")).isInstanceOf(TrilensException.class);
        }
    }

    @Test
    void writesAndLocksLeaveNoDescriptorOpen() throws IOException {
        assumeTrue(Files.isDirectory(FDS), "needs Linux's /proc/self/fd to count open descriptors");
        writeAndLock(); // once first: whatever the JDK opens on first use stays open
        long before = open();
        for (int i = 0; i < 30; i++) {
            writeAndLock();
        }
        // a leak of one descriptor per write or lock would be 30 or more
        assertThat(open()).isLessThan(before + 10);
    }
}
