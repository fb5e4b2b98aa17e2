package dev.trilens.train;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.trilens.TrilensException;
import dev.trilens.io.AtomicFiles;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.file.Files;
import java.nio.file.NoSuchFileException;
import java.nio.file.Path;
import java.util.Iterator;
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

    private static final ObjectMapper JSON = new ObjectMapper();
    private static final List<String> TENSORS = List.of("params", "adam.m", "adam.v");
    private static final String FORMAT = "trilens.train_state.v1";

    public void write(Path target) {
        Map<String, String> meta = new LinkedHashMap<>();
        meta.put("format", FORMAT);
        meta.putAll(config.toMetadata());
        meta.put("train.epochs_done", Integer.toString(epochsDone));
        meta.put("adam.step", Long.toString(adamStep));
        meta.put("best.trigram_avg_correct_prob", Double.toString(bestAvgCorrectProb));
        meta.put("best.epoch", Integer.toString(bestEpoch));
        float[][] data = {params, adamM, adamV};
        ObjectNode header = JSON.createObjectNode();
        ObjectNode m = header.putObject("__metadata__");
        meta.forEach(m::put);
        long offset = 0;
        for (int i = 0; i < data.length; i++) {
            ObjectNode t = header.putObject(TENSORS.get(i));
            t.put("dtype", "F32");
            t.putArray("shape").add(data[i].length);
            t.putArray("data_offsets").add(offset).add(offset + 4L * data[i].length);
            offset += 4L * data[i].length;
        }
        byte[] json;
        try {
            json = JSON.writeValueAsBytes(header);
        } catch (IOException e) {
            throw new IllegalStateException(e);
        }
        int padded = (json.length + 7) / 8 * 8;
        AtomicFiles.write(target, out -> {
            out.write(ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(padded).array());
            out.write(json);
            for (int i = json.length; i < padded; i++) {
                out.write(' ');
            }
            for (float[] d : data) {
                ByteBuffer buf = ByteBuffer.allocate(4 * d.length).order(ByteOrder.LITTLE_ENDIAN);
                buf.asFloatBuffer().put(d);
                out.write(buf.array());
            }
        });
    }

    public static TrainState read(Path path) {
        String where = "training state " + path;
        byte[] bytes;
        try {
            bytes = Files.readAllBytes(path);
        } catch (NoSuchFileException e) {
            throw new TrilensException(where + " not found: expected a folder written by trilens train");
        } catch (IOException e) {
            throw new TrilensException("cannot read " + where + ": " + e.getMessage(), e);
        }
        ByteBuffer buf = ByteBuffer.wrap(bytes).order(ByteOrder.LITTLE_ENDIAN);
        long n = bytes.length >= 8 ? buf.getLong(0) : -1;
        if (n < 2 || n > bytes.length - 8) {
            throw corrupt(where, "its header length does not fit its " + bytes.length + " bytes");
        }
        JsonNode header;
        try {
            header = JSON.readTree(new String(bytes, 8, (int) n, java.nio.charset.StandardCharsets.UTF_8));
        } catch (IOException e) {
            throw corrupt(where, "its header is not valid JSON");
        }
        JsonNode metaNode = header == null ? null : header.get("__metadata__");
        if (metaNode == null || !metaNode.isObject() || !FORMAT.equals(metaNode.path("format").asText())) {
            throw corrupt(where, "it lacks the metadata format=" + FORMAT);
        }
        Map<String, String> meta = new LinkedHashMap<>();
        for (Iterator<Map.Entry<String, JsonNode>> it = metaNode.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> e = it.next();
            meta.put(e.getKey(), e.getValue().asText());
        }
        TrainConfig cfg = TrainConfig.fromMetadata(meta, where);
        int size = new dev.trilens.model.ParamLayout(cfg.modelConfig()).totalSize();
        long dataStart = 8 + n;
        float[][] data = new float[TENSORS.size()][];
        for (int i = 0; i < data.length; i++) {
            JsonNode t = header.get(TENSORS.get(i));
            JsonNode off = t == null ? null : t.get("data_offsets");
            if (t == null || !"F32".equals(t.path("dtype").asText()) || t.path("shape").size() != 1
                    || t.path("shape").get(0).asLong() != size || off == null || off.size() != 2) {
                throw corrupt(where, "tensor '" + TENSORS.get(i) + "' is missing or not F32 [" + size + "]");
            }
            long begin = dataStart + off.get(0).asLong();
            long end = dataStart + off.get(1).asLong();
            if (off.get(0).asLong() < 0 || end - begin != 4L * size || end > bytes.length) {
                throw corrupt(where, "tensor '" + TENSORS.get(i) + "' lies outside the file (truncated?)");
            }
            data[i] = new float[size];
            ByteBuffer.wrap(bytes, (int) begin, 4 * size).order(ByteOrder.LITTLE_ENDIAN).asFloatBuffer().get(data[i]);
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
            throw corrupt(where, "its epoch, step or best-score metadata is malformed (" + e.getMessage() + ")");
        }
    }

    private static TrilensException corrupt(String where, String why) {
        return new TrilensException(where + " is unusable: " + why + "; expected the train_state file trilens train "
                + "writes (start a fresh run with another --out)");
    }
}
