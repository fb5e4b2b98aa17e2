package dev.trilens;

import static org.assertj.core.api.Assertions.assertThat;
import static org.assertj.core.api.Assertions.fail;

import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.util.ArrayList;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * Runs Python scripts against the system's PyTorch, for tests that check trilens against torch itself. Where
 * {@value #PYTHON} cannot import torch, {@link #assumeAvailable} skips the calling test and says how to get it;
 * under {@code CI=true} it fails the test instead, since CI must run these cross-checks.
 */
public final class TorchPython {
    public static final String PYTHON = "/usr/bin/python3";
    private static Boolean available;

    private TorchPython() {
    }

    /**
     * Skips the calling test unless {@value #PYTHON} can import torch (fails it under {@code CI=true}); what names
     * what the test would check.
     */
    public static void assumeAvailable(String what) {
        Fixtures.require(available(), PYTHON + " cannot import torch (apt-get install python3-torch to " + what
                + "; .ci/run installs it)");
    }

    public static synchronized boolean available() {
        if (available == null) {
            available = probe();
        }
        return available;
    }

    private static boolean probe() {
        if (!Files.isExecutable(Path.of(PYTHON))) {
            return false;
        }
        try {
            Process p = new ProcessBuilder(PYTHON, "-c", "import torch").redirectErrorStream(true)
                    .redirectOutput(ProcessBuilder.Redirect.DISCARD).start();
            if (!p.waitFor(60, TimeUnit.SECONDS)) {
                p.destroyForcibly();
                return false;
            }
            return p.exitValue() == 0;
        } catch (IOException e) {
            return false;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            return false;
        }
    }

    /**
     * Writes script to dir and runs it with args; returns its stdout. Fails the test with python's stderr on a
     * non-zero exit, or if it takes more than two minutes.
     */
    public static String run(Path dir, String script, String... args) throws IOException, InterruptedException {
        Path file = Files.createTempFile(dir, "torch", ".py");
        Files.writeString(file, script, StandardCharsets.UTF_8);
        Path outFile = dir.resolve(file.getFileName() + ".out"), errFile = dir.resolve(file.getFileName() + ".err");
        List<String> cmd = new ArrayList<>(List.of(PYTHON, file.toString()));
        cmd.addAll(List.of(args));
        Process p = new ProcessBuilder(cmd).redirectOutput(outFile.toFile()).redirectError(errFile.toFile()).start();
        if (!p.waitFor(120, TimeUnit.SECONDS)) {
            p.destroyForcibly();
            fail("python did not finish within 120 s: " + cmd);
        }
        String err = Files.readString(errFile, StandardCharsets.UTF_8);
        assertThat(p.exitValue()).as("python exit code; stderr:%n%s", err).isZero();
        return Files.readString(outFile, StandardCharsets.UTF_8);
    }
}
