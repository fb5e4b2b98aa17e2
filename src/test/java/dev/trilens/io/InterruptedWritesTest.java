package dev.trilens.io;

import static org.assertj.core.api.Assertions.assertThat;
import static org.junit.jupiter.api.Assumptions.assumeTrue;

import dev.trilens.TrilensException;
import dev.trilens.cli.Main;
import dev.trilens.interp.TrigramExtractorTestModels;
import java.io.ByteArrayOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.List;
import java.util.concurrent.TimeUnit;
import java.util.stream.Stream;
import org.junit.jupiter.api.Tag;
import org.junit.jupiter.api.Test;
import org.junit.jupiter.api.io.TempDir;

/** Writes that are interrupted, run out of space or meet a read-only folder leave nothing half-written. */
class InterruptedWritesTest {
    @TempDir
    Path tmp;

    private static List<String> names(Path dir) throws IOException {
        try (Stream<Path> s = Files.list(dir)) {
            return s.map(p -> p.getFileName().toString()).sorted().toList();
        }
    }

    private static boolean hasOurLeftovers(Path dir) throws IOException {
        try (Stream<Path> s = Files.walk(dir)) {
            return s.anyMatch(p -> AtomicFiles.OURS.matcher(p.getFileName().toString()).matches());
        }
    }

    private static long deadPid() throws Exception {
        Process p = new ProcessBuilder("true").start();
        p.waitFor();
        return p.pid();
    }

    @Test
    void staleTempFilesOfDeadProcessesAreSweptOnTheNextWrite() throws Exception {
        long dead = deadPid();
        Path staleTmp = Files.writeString(tmp.resolve(".analysis.json." + dead + "-abc.tmp"), "half");
        Path staleStaging = Files.createDirectories(tmp.resolve(".analysis." + dead + "-xyz.staging/figures"));
        Files.writeString(staleStaging.resolve("a.png"), "half");
        // a running process's files (pid 1 is always alive) and files of other names are not ours to delete
        Path alive = Files.writeString(tmp.resolve(".analysis.json.1-abc.tmp"), "in progress");
        Path other = Files.writeString(tmp.resolve(".notes.tmp"), "user's");
        AtomicFiles.write(tmp.resolve("analysis.json"), os -> os.write('1'));
        assertThat(staleTmp).doesNotExist();
        assertThat(staleStaging.getParent()).doesNotExist();
        assertThat(alive).exists();
        assertThat(other).exists();
    }

    @Test
    void staleStagingFoldersAreSweptWhenASetBegins() throws Exception {
        Path stale = Files.createDirectories(tmp.resolve(".analysis." + deadPid() + "-xyz.staging/figures"));
        Files.writeString(stale.resolve("a.png"), "half");
        Path alive = Files.createDirectories(tmp.resolve(".analysis.1-abc.staging"));
        try (OutputSet set = OutputSet.begin(tmp, "analysis")) {
            assertThat(stale.getParent()).doesNotExist();
            assertThat(alive).exists();
        }
    }

    @Test
    void aSetThatFailsHalfWayLeavesThePreviousSetWhole() throws Exception {
        try (OutputSet set = OutputSet.begin(tmp, "analysis")) {
            Files.writeString(set.path("analysis.json"), "old");
            Files.createDirectories(set.path("figures"));
            Files.writeString(set.path("figures/a.png"), "old");
            set.commit();
        }
        try (OutputSet set = OutputSet.begin(tmp, "analysis")) {
            Files.writeString(set.path("analysis.json"), "new");
            throw new TrilensException("disk full, say");
        } catch (TrilensException expected) {
            // the second set never committed
        }
        assertThat(Files.readString(tmp.resolve("analysis.json"))).isEqualTo("old");
        assertThat(Files.readString(tmp.resolve("figures/a.png"))).isEqualTo("old");
        assertThat(names(tmp)).containsExactly("analysis.json", "figures");
    }

    /** Mounts a small tmpfs (root only); skips, saying why, where the test cannot. */
    private Path mount(String name, String options) throws Exception {
        Path dir = Files.createDirectories(tmp.resolve(name));
        Process p = new ProcessBuilder("mount", "-t", "tmpfs", "-o", options, "tmpfs", dir.toString())
                .redirectErrorStream(true).start();
        String out = new String(p.getInputStream().readAllBytes(), StandardCharsets.UTF_8).strip();
        assumeTrue(p.waitFor() == 0, "skipped: cannot mount a small tmpfs here (" + out + "); needs root");
        return dir;
    }

    private static void unmount(Path dir) throws Exception {
        new ProcessBuilder("umount", dir.toString()).start().waitFor(30, TimeUnit.SECONDS);
    }

    private record Result(int code, String err) {
    }

    private static Result cli(String... args) {
        ByteArrayOutputStream err = new ByteArrayOutputStream(), out = new ByteArrayOutputStream();
        PrintStream savedErr = System.err, savedOut = System.out;
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
        System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
        try {
            return new Result(Main.execute(args), err.toString(StandardCharsets.UTF_8));
        } finally {
            System.setErr(savedErr);
            System.setOut(savedOut);
        }
    }

    private static String lastLine(String s) {
        String[] lines = s.strip().split("\n");
        return lines[lines.length - 1];
    }

    @Test
    void aLockOrAWriteInAReadOnlyFolderIsOneLineNamingIt() throws Exception {
        Path ro = mount("rolock", "ro,size=64k");
        try {
            org.assertj.core.api.Assertions.assertThatThrownBy(() -> OutputLock.acquire(ro, "train"))
                    .isInstanceOf(TrilensException.class)
                    .hasMessage("cannot write to output folder " + ro + ": Read-only file system");
            org.assertj.core.api.Assertions.assertThatThrownBy(() -> AtomicFiles.write(ro.resolve("m.pt"),
                            out -> out.write(1)))
                    .isInstanceOf(TrilensException.class).hasMessageStartingWith("cannot write " + ro.resolve("m.pt"))
                    .hasMessageContaining("Read-only file system");
        } finally {
            unmount(ro);
        }
    }

    @Tag("end-to-end")
    @Test
    void aFullDiskIsOneLineAndLeavesNoHalfSet() throws Exception {
        Path model = TrigramExtractorTestModels.tinyCheckpoint();
        Path disk = mount("full", "size=96k");
        try {
            Result r = cli("analyze", "--model", model.toString(), "--size", "60", "--out", disk.toString());
            assertThat(r.code()).isEqualTo(1);
            // progress lines come first on stderr; the error is the last line, and the only one that is not progress
            assertThat(r.err().lines().filter(l -> !l.startsWith("analyze: ")).toList()).hasSize(1);
            assertThat(lastLine(r.err())).startsWith("trilens: error: cannot write ").contains("No space left");
            assertThat(names(disk)).isEmpty();
        } finally {
            unmount(disk);
        }
    }

    @Tag("end-to-end")
    @Test
    void aReadOnlyFolderIsOneLineNamingIt() throws Exception {
        Path model = TrigramExtractorTestModels.tinyCheckpoint();
        Path ro = mount("ro", "ro,size=64k");
        try {
            Result r = cli("analyze", "--model", model.toString(), "--size", "60", "--out", ro.toString());
            assertThat(r.code()).isEqualTo(1);
            assertThat(r.err().strip()).doesNotContain("\n").startsWith("trilens: error: cannot write to output "
                    + "folder " + ro).containsIgnoringCase("read-only file system");
            Result sub = cli("analyze", "--model", model.toString(), "--size", "60", "--out",
                    ro.resolve("sub").toString());
            assertThat(sub.code()).isEqualTo(1);
            assertThat(sub.err().strip()).doesNotContain("\n").contains(ro.resolve("sub").toString())
                    .containsIgnoringCase("read-only file system");
        } finally {
            unmount(ro);
        }
    }

    @Tag("end-to-end")
    @Test
    void aTerminatedAnalyzeLeavesNothingBehind() throws Exception {
        Path model = TrigramExtractorTestModels.tinyCheckpoint();
        Path out = tmp.resolve("out");
        Process child = new ProcessBuilder(Path.of(System.getProperty("java.home"), "bin", "java").toString(),
                "--add-modules", "jdk.incubator.vector", "-cp", System.getProperty("java.class.path"),
                Main.class.getName(), "analyze", "--model", model.toString(), "--size", "300", "--out",
                out.toString()).redirectErrorStream(true).redirectOutput(tmp.resolve("child.log").toFile()).start();
        boolean caught = false;
        // SIGTERM while the output set is being written: the moment that used to leave temp files behind
        for (int i = 0; i < 12_000 && child.isAlive() && !caught; i++) {
            caught = Files.isDirectory(out) && hasOurLeftovers(out);
            if (!caught) {
                child.waitFor(5, TimeUnit.MILLISECONDS);
            }
        }
        assertThat(caught).as("the child reached the writing of its output set: "
                + Files.readString(tmp.resolve("child.log"))).isTrue();
        child.destroy(); // SIGTERM
        assertThat(child.waitFor(60, TimeUnit.SECONDS)).isTrue();
        assertThat(hasOurLeftovers(out)).as(names(out).toString()).isFalse();
        assertThat(out.resolve("analysis.json")).doesNotExist();
        assertThat(out.resolve(OutputLock.FILE)).doesNotExist();
    }
}
