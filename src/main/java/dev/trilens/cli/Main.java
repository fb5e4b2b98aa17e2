package dev.trilens.cli;

import dev.trilens.TrilensException;
import dev.trilens.io.FileText;
import java.io.PrintWriter;
import java.util.List;
import picocli.CommandLine;
import picocli.CommandLine.Command;

@Command(name = "trilens", mixinStandardHelpOptions = true, version = "trilens 0.1.0",
        description = "Train and mechanistically interpret small transformers: the ARENA Nov 2024 trigram model.",
        footer = {"", "Grids of training runs: ./trilens sweep --help (a module of its own, on Apache Spark; built on "
                + "first use)."})
public final class Main implements Runnable {

    /** Every subcommand, in the order the usage lists them. */
    private static final List<Class<?>> SUBCOMMANDS = List.of(DatasetCommand.class, EvaluateCommand.class,
            BenchCommand.class, TrainCommand.class, RunCommand.class, CompareCommand.class, PatchCommand.class,
            PredictCommand.class, ServeCommand.class, ExtractCommand.class, AnalyzeCommand.class,
            DynamicsCommand.class, CommandLine.HelpCommand.class);

    /** Set by --quiet for the command being run; execute resets it, so one JVM can run many commands. */
    private static volatile boolean quiet;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @CommandLine.Option(names = {"-q", "--quiet"}, scope = CommandLine.ScopeType.INHERIT, description = "for "
            + "scripts: print results and errors only, no progress (epoch lines, analysis sections, snapshots)")
    void setQuiet(boolean q) {
        quiet = q;
    }

    /** Whether progress lines are to be left out (--quiet). */
    static boolean quiet() {
        return quiet;
    }

    @Override
    public void run() {
        spec.commandLine().usage(spec.commandLine().getOut());
    }

    public static void main(String[] args) {
        System.exit(execute(args));
    }

    /** The command line with every subcommand. */
    static CommandLine commandLine() {
        return commandLine(List.of());
    }

    /**
     * The command line for these arguments: when they name a subcommand (its name is their first word that is not
     * a flag; the root's flags take no value), only that one. Picocli builds a command's model by reflection when it
     * is added, about 150 ms of every start for the eleven a run does not use. The usage, `help`, and a word that is
     * no command (its "did you mean" suggestions) get them all.
     */
    static CommandLine commandLine(List<String> args) {
        CommandLine cli = new CommandLine(new Main());
        String named = args.stream().filter(a -> !a.startsWith("-")).findFirst().orElse(null);
        Class<?> only = SUBCOMMANDS.stream()
                .filter(c -> c != CommandLine.HelpCommand.class
                        && c.getAnnotation(Command.class).name().equals(named))
                .findFirst().orElse(null);
        if (only != null) {
            cli.addSubcommand(only);
        } else {
            SUBCOMMANDS.forEach(cli::addSubcommand);
        }
        // wide enough that file names and calls in the descriptions are not split at their dots; set after the
        // subcommands are added, as picocli applies it to those present
        cli.setUsageHelpWidth(110);
        return cli;
    }

    /** Runs the CLI and returns its exit code: 0 ok, 1 an error in what the user gave, 2 a bad flag. */
    public static int execute(String... args) {
        return execute(commandLine(List.of(args)), args);
    }

    /**
     * Runs a picocli command line with trilens's conventions (a one-line error, exit code 1 for a bad input and 2
     * for a bad flag, a stack trace only under TRILENS_DEBUG); the sweep module runs its command through it.
     */
    public static int execute(CommandLine cli, String... args) {
        quiet = false;
        cli.setParameterExceptionHandler((ex, argv) -> {
            PrintWriter err = ex.getCommandLine().getErr();
            String cmd = ex.getCommandLine().getCommandSpec().qualifiedName();
            err.println(cmd + ": " + ex.getMessage() + didYouMean(ex) + " (see '" + cmd + " --help')");
            err.flush();
            return 2;
        });
        cli.setExecutionExceptionHandler((ex, commandLine, parseResult) -> {
            report(commandLine.getErr(), ex);
            return 1;
        });
        String kernels = dev.trilens.model.kernels.Kernels.overrideProblem();
        if (kernels != null) {
            cli.getErr().println("trilens: error: " + kernels);
            cli.getErr().flush();
            return 2;
        }
        try {
            return cli.execute(args);
        } catch (StackOverflowError | OutOfMemoryError e) {
            // picocli passes only Exceptions to the handler above; these Errors would otherwise end in a trace
            report(cli.getErr(), e);
            return 1;
        }
    }

    /** "; did you mean evaluate?" for a mistyped command or flag that is close to a real one, else "". */
    static String didYouMean(CommandLine.ParameterException ex) {
        if (!(ex instanceof CommandLine.UnmatchedArgumentException unmatched)) {
            return "";
        }
        java.util.List<String> suggestions = unmatched.getSuggestions();
        if (suggestions.isEmpty()) {
            return "";
        }
        return "; did you mean " + String.join(" or ", suggestions.subList(0, Math.min(3, suggestions.size()))) + "?";
    }

    private static void report(PrintWriter err, Throwable ex) {
        if (ex instanceof TrilensException) {
            err.println("trilens: error: " + oneLine(ex.getMessage()));
        } else if (ex instanceof OutOfMemoryError) {
            err.println("trilens: error: out of memory (" + oneLine(ex.getMessage()) + ") with a Java heap of "
                    + (Runtime.getRuntime().maxMemory() >> 20) + " MiB; expected smaller inputs, or a larger heap "
                    + "(TRILENS_JAVA_OPTS=-Xmx...)");
        } else {
            // a bug, not a bad input: still one line, with the trace only on request
            err.println("trilens: internal error: " + oneLine(ex.toString()) + (System.getenv("TRILENS_DEBUG") == null
                    ? " (set TRILENS_DEBUG=1 for the stack trace)" : ""));
            if (System.getenv("TRILENS_DEBUG") != null) {
                ex.printStackTrace(err);
            }
        }
        err.flush();
    }

    /** A message may quote a file's bytes: newlines and terminal escapes must not reach the terminal. */
    private static String oneLine(String message) {
        return FileText.escape(String.valueOf(message));
    }
}
