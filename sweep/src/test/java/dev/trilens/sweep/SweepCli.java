package dev.trilens.sweep;

import static org.assertj.core.api.Assertions.assertThat;

import dev.trilens.cli.Main;
import java.io.PrintWriter;
import java.io.StringWriter;
import picocli.CommandLine;

/** `trilens sweep args...` run in this JVM as SweepMain runs it, with what it prints captured. */
record SweepCli(int code, String out, String err) {

    static SweepCli run(String... args) {
        StringWriter out = new StringWriter(), err = new StringWriter();
        CommandLine cli = SweepMain.commandLine();
        cli.setOut(new PrintWriter(out, true));
        cli.setErr(new PrintWriter(err, true));
        int code = Main.execute(cli, args);
        return new SweepCli(code, out.toString(), err.toString());
    }

    /** Asserts a successful run, showing what it printed if not. */
    SweepCli ok() {
        assertThat(code).as("exit code; stdout:%n%s%nstderr:%n%s", out, err).isZero();
        return this;
    }

    /** Asserts the given exit code and one line on stderr containing message, with nothing on stdout. */
    void failsWith(int expectedCode, String message) {
        assertThat(code).as(err).isEqualTo(expectedCode);
        assertThat(err).contains(message).doesNotContain("\tat ").hasLineCount(1);
        assertThat(out).isEmpty();
    }
}
