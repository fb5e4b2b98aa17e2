package dev.trilens.train;

import dev.trilens.TrilensException;
import dev.trilens.io.FileText;
import dev.trilens.io.Safetensors;
import dev.trilens.model.ParamLayout;
import java.io.IOException;
import java.nio.channels.FileChannel;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;

/**
 * What a run needs to continue bit for bit after its last completed epoch: the config, the weights, AdamW's moments
 * and step, and the best score so far. The data order needs no state of its own: it is drawn from the dataset's
 * generator, so epochsDone is its state (see {@link DataOrder}).
 *
 * <p>Stored as a safetensors file (three flat F32 tensors, the rest in string metadata) so ordinary safetensors
 * tools can open it. It is the run's commit point: the trainer writes it last each epoch, atomically.
 */
public record TrainState(TrainConfig config, int epochsDone, long adamStep, double bestAvgCorrectProb,
                         int bestEpoch, float[] params, float[] adamM, float[] adamV) {

    private static final List<String> TENSORS = List.of("params", "adam.m", "adam.v");
    private static final String FORMAT = "trilens.train_state.v1";
    private static final String EXPECTED =
            "expected the train_state file trilens train writes (start a fresh run with another --out)";

    public void write(Path target) {
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("format", FORMAT);
        meta.putAll(config.toMetadata());
        meta.put("train.epochs_done", Integer.toString(epochsDone));
        meta.put("adam.step", Long.toString(adamStep));
        meta.put("best.trigram_avg_correct_prob", Double.toString(bestAvgCorrectProb));
        meta.put("best.epoch", Integer.toString(bestEpoch));
        float[][] data = {params, adamM, adamV};
        List<Safetensors.F32> tensors = new ArrayList<>();
        for (int i = 0; i < data.length; i++) {
            tensors.add(new Safetensors.F32(TENSORS.get(i), new int[] {data[i].length}, data[i], 0, data[i].length));
        }
        Safetensors.writeF32(tensors, meta, target);
    }

    /**
     * Reads a state written by {@link #write}. Its sizes are claims until checked: the model its metadata declares
     * must have exactly as many parameters as its tensors hold, counted before any layout is built or array
     * allocated, and the tensors must lie within the file.
     */
    public static TrainState read(Path path) {
        String where = "training state " + path;
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            Safetensors.Header h;
            try {
                h = Safetensors.readHeader(ch, where);
            } catch (TrilensException e) {
                // the safetensors check's message starts with where; keep what follows
                String why = e.getMessage().substring(Math.min(where.length(), e.getMessage().length()));
                throw corrupt(where, why.startsWith(": ") ? why.substring(2) : "the file" + why);
            }
            Map<String, String> meta = h.metadata();
            if (!FORMAT.equals(meta.get("format"))) {
                throw corrupt(where, "it lacks the metadata format=" + FORMAT);
            }
            TrainConfig cfg = TrainConfig.fromMetadata(meta, where);
            long count = ParamLayout.count(cfg.modelConfig());
            float[][] data = new float[TENSORS.size()][];
            for (int i = 0; i < data.length; i++) {
                Safetensors.TensorInfo t = h.tensors().get(TENSORS.get(i));
                if (t == null || !t.dtype().equals("float32") || t.shape().length != 1) {
                    throw corrupt(where, "tensor '" + TENSORS.get(i) + "' is missing or not a 1-D F32 tensor");
                }
                if (t.numel() != count) {
                    throw corrupt(where, "its metadata declares a model (" + cfg.modelConfig() + ") of "
                            + (count == Long.MAX_VALUE ? "over 2^63" : String.valueOf(count)) + " parameters, but "
                            + "tensor '" + TENSORS.get(i) + "' holds " + t.numel());
                }
            }
            // count now matches tensors present in the file, so the arrays below are of its size; the layout's own
            // limits (layers, one array's length) are checked here, where the file can still be named
            try {
                new ParamLayout(cfg.modelConfig());
            } catch (TrilensException e) {
                throw corrupt(where, e.getMessage());
            }
            for (int i = 0; i < data.length; i++) {
                data[i] = new float[(int) count];
                Safetensors.readFloats(ch, h, h.tensors().get(TENSORS.get(i)), data[i], 0);
                // a run continued from NaN weights or moments would train on garbage and save it as a model
                for (int j = 0; j < data[i].length; j++) {
                    if (!Float.isFinite(data[i][j]) || (i == 2 && data[i][j] < 0)) {
                        throw corrupt(where, "tensor '" + TENSORS.get(i) + "' holds " + data[i][j] + " at index " + j
                                + (i == 2 ? ", expected finite values >= 0" : ", expected finite values"));
                    }
                }
            }
            try {
                int epochsDone = Integer.parseInt(meta.getOrDefault("train.epochs_done", ""));
                long step = Long.parseLong(meta.getOrDefault("adam.step", ""));
                double best = Double.parseDouble(meta.getOrDefault("best.trigram_avg_correct_prob", ""));
                int bestEpoch = Integer.parseInt(meta.getOrDefault("best.epoch", ""));
                if (epochsDone < 0 || epochsDone > cfg.epochs() || step < 0) {
                    throw corrupt(where, "it records epoch " + epochsDone + " of " + cfg.epochs() + ", step " + step);
                }
                return new TrainState(cfg, epochsDone, step, best, bestEpoch, data[0], data[1], data[2]);
            } catch (NumberFormatException e) {
                throw corrupt(where, "its epoch, step or best-score metadata is malformed ("
                        + FileText.show(e.getMessage()) + ")");
            }
        } catch (NoSuchFileException e) {
            throw new TrilensException(where + " not found: expected a folder written by trilens train");
        } catch (IOException e) {
            throw new TrilensException("cannot read " + where + ": " + FileText.show(String.valueOf(e.getMessage())),
                    e);
        } catch (OutOfMemoryError e) {
            throw new TrilensException("cannot read " + where + ": its tensors need more memory than the Java heap's "
                    + (Runtime.getRuntime().maxMemory() >> 20) + " MiB (" + e.getMessage() + "); expected a larger "
                    + "heap (TRILENS_JAVA_OPTS=-Xmx...)", e);
        }
    }

    private static TrilensException corrupt(String where, String why) {
        return new TrilensException(where + " is unusable: " + why + "; " + EXPECTED);
    }
}
