package dev.trilens.sweep;

import dev.trilens.cli.Main;
import picocli.CommandLine;

/** The sweep jar's entry point: `./trilens sweep ...`, or spark-submit --class dev.trilens.sweep.SweepMain. */
public final class SweepMain {
    private SweepMain() {
    }

    public static void main(String[] args) {
        System.exit(execute(args));
    }

    /** Runs `trilens sweep args...` with the CLI's conventions and returns its exit code. */
    public static int execute(String... args) {
        return Main.execute(commandLine(), args);
    }

    /** The sweep's command line, as wide as the core's help. */
    static CommandLine commandLine() {
        return new CommandLine(new SweepCommand()).setUsageHelpWidth(110);
    }
}
