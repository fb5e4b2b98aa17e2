package dev.trilens.cli;

import static org.assertj.core.api.Assertions.assertThat;

import dev.trilens.model.Parallel;
import java.io.ByteArrayOutputStream;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import org.junit.jupiter.api.AfterEach;
import org.junit.jupiter.api.BeforeEach;

/** Runs the CLI as a user would, through Main.execute, with stdout and stderr captured. */
public abstract class CliTestBase {
    private final int threads = Parallel.threads();
    private PrintStream oldOut, oldErr;
    private ByteArrayOutputStream out, err;

    @BeforeEach
    void captureOutput() {
        oldOut = System.out;
        oldErr = System.err;
        out = new ByteArrayOutputStream();
        err = new ByteArrayOutputStream();
        System.setOut(new PrintStream(out, true, StandardCharsets.UTF_8));
        System.setErr(new PrintStream(err, true, StandardCharsets.UTF_8));
    }

    @AfterEach
    void restoreOutput() {
        System.setOut(oldOut);
        System.setErr(oldErr);
        Parallel.setThreads(threads); // --threads sets it for the whole JVM
    }

    /** The exit code of `trilens args...`; out() and err() then hold what it printed. */
    protected int run(String... args) {
        out.reset();
        err.reset();
        return Main.execute(args);
    }

    protected String out() {
        return out.toString(StandardCharsets.UTF_8);
    }

    protected String err() {
        return err.toString(StandardCharsets.UTF_8);
    }

    /** The command fails with this exit code and one line on stderr naming what was wrong: no stack trace. */
    protected void assertOneLineError(int code, String expected, String... args) {
        assertThat(run(args)).as(String.join(" ", args)).isEqualTo(code);
        assertThat(err()).as(String.join(" ", args)).contains(expected).doesNotContain("\tat ").hasLineCount(1);
    }

    /** As assertOneLineError, and nothing on stdout either. */
    protected void assertOneLineErrorOnly(int code, String expected, String... args) {
        assertOneLineError(code, expected, args);
        assertThat(out()).as(String.join(" ", args)).isEmpty();
    }
}
