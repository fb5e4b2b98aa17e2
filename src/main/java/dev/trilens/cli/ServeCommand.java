package dev.trilens.cli;

import dev.trilens.TrilensException;
import dev.trilens.data.TrigramDataset;
import dev.trilens.interp.Probe;
import dev.trilens.io.Checkpoint;
import dev.trilens.io.Checkpoints;
import dev.trilens.serve.ProbeServer;
import java.io.PrintWriter;
import java.nio.file.Path;
import java.util.Locale;
import java.util.concurrent.CountDownLatch;
import java.util.concurrent.Callable;
import picocli.CommandLine;
import picocli.CommandLine.Command;
import picocli.CommandLine.Mixin;
import picocli.CommandLine.Option;

/** `trilens serve`: the live explorer. Prints {@code listening on http://HOST:PORT} once it accepts connections. */
@Command(name = "serve", mixinStandardHelpOptions = true,
        description = {"A local web page to probe the model live: type a token sequence and see the predictions, the "
                + "attention, the extracted rule and the direct logit attribution; ablate, move attention, force the "
                + "rule; compare with a second model (--model-b). Also a JSON API (/api/predict, /api/patch, "
                + "/api/ablate, /api/compare, /api/model; see the README). Ctrl-C stops it.",
                "It listens on 127.0.0.1 only, unless --host says otherwise."})
public final class ServeCommand implements Callable<Integer> {

    @Option(names = "--model", required = true, description = "checkpoint: PyTorch .pt state dict or .safetensors")
    Path model;

    @Option(names = "--model-b", description = "a second checkpoint to show side by side")
    Path modelB;

    @Option(names = "--port", defaultValue = "8080", description = "TCP port; 0 picks a free one (default: "
            + "${DEFAULT-VALUE})")
    int port;

    @Option(names = "--host", defaultValue = "127.0.0.1", description = "address to listen on (default: "
            + "${DEFAULT-VALUE}, this machine only)")
    String host;

    @Mixin
    DatasetOptions data;

    @CommandLine.Spec
    CommandLine.Model.CommandSpec spec;

    @Override
    public Integer call() throws Exception {
        CommandLine cl = spec.commandLine();
        TrainCommand.check(cl, port >= 0 && port <= 65535, "--port must be 0..65535, got " + port);
        TrainCommand.check(cl, !host.isBlank(), "--host must not be empty");
        TrainCommand.check(cl, data.size >= 1, "--size must be >= 1, got " + data.size);
        PrintWriter out = cl.getOut();
        Checkpoint ca = Checkpoints.load(model);
        Checkpoint cb = modelB == null ? null : Checkpoints.load(modelB);
        out.printf("reading the trigram table%s from the weights...%n", cb == null ? "" : "s");
        out.flush();
        TrigramDataset ds = EvaluateCommand.datasetFor(ca, data, cl.getParseResult());
        Probe pa = Probe.of(ca.weights(), ds);
        Probe pb = cb == null ? null : Probe.of(cb.weights(), ds.dVocab() == cb.weights().cfg.dVocab()
                && ds.seqLen() <= cb.weights().cfg.nCtx() ? ds : null);
        ProbeServer server = new ProbeServer(new ProbeServer.Model(pa, model.getFileName().toString()),
                pb == null ? null : new ProbeServer.Model(pb, modelB.getFileName().toString()));
        try {
            server.start(host, port);
        } catch (RuntimeException e) {
            throw new TrilensException("cannot listen on " + host + ":" + port + ": " + rootMessage(e));
        }
        CountDownLatch stopped = new CountDownLatch(1);
        Thread onExit = new Thread(() -> {
            server.close();
            out.println("stopped");
            out.flush();
            stopped.countDown();
        }, "trilens-serve-stop");
        Runtime.getRuntime().addShutdownHook(onExit);
        if (!isLoopback(host)) {
            out.printf("warning: listening on %s, not only this machine: anyone who can reach this address can use "
                    + "the server%n", host);
        }
        out.printf("model a    %s (%d trigrams extracted)%n", model, pa.rules().trigrams().size());
        if (pb != null) {
            out.printf("model b    %s (%d trigrams extracted)%n", modelB, pb.rules().trigrams().size());
        }
        out.printf("listening on %s%n", server.url());
        out.println("press Ctrl-C to stop");
        out.flush();
        try {
            stopped.await();
        } catch (InterruptedException e) {
            // stopped from within the JVM (an embedding program, a test) rather than by a signal
            Runtime.getRuntime().removeShutdownHook(onExit);
            server.close();
            out.println("stopped");
            out.flush();
        }
        return 0;
    }

    static boolean isLoopback(String host) {
        String h = host.toLowerCase(Locale.ROOT);
        return h.equals("127.0.0.1") || h.equals("localhost") || h.equals("::1") || h.equals("[::1]");
    }

    private static String rootMessage(Throwable e) {
        Throwable t = e;
        while (t.getCause() != null) {
            t = t.getCause();
        }
        return t.getMessage() == null ? t.toString() : t.getMessage();
    }
}
