package dev.trilens.io;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.databind.DeserializationFeature;
import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.ObjectMapper;
import com.fasterxml.jackson.databind.node.ArrayNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import dev.trilens.TrilensException;
import dev.trilens.model.ModelConfig;
import dev.trilens.model.ParamLayout;
import dev.trilens.model.Weights;
import java.io.EOFException;
import java.io.IOException;
import java.nio.ByteBuffer;
import java.nio.ByteOrder;
import java.nio.channels.FileChannel;
import java.nio.file.Path;
import java.nio.file.StandardOpenOption;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.Collections;
import java.util.Iterator;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Objects;

/**
 * The safetensors format: an 8-byte little-endian header length, a JSON header naming each tensor's dtype, shape and
 * byte range, then the raw data. The model config goes in the header's string metadata, so it is read back exactly;
 * files from elsewhere (e.g. safetensors.torch.save_file(model.state_dict())) get it inferred from the shapes.
 */
public final class Safetensors {

    /** The header is read whole into memory, so its declared length is bounded before anything is allocated. */
    static final long MAX_HEADER_BYTES = 100_000_000;

    /** Duplicate names would let one tensor's bytes hide behind another's entry. */
    private static final ObjectMapper JSON =
            new ObjectMapper().enable(DeserializationFeature.FAIL_ON_READING_DUP_TREE_KEY);
    private static final List<String> CONFIG_KEYS =
            List.of("d_vocab", "n_ctx", "d_model", "n_layers", "n_heads", "d_head", "d_mlp", "normalization");
    private static final Map<String, String> DTYPES = Map.of("F32", "float32", "F64", "float64", "F16", "float16",
            "BF16", "bfloat16", "I64", "int64", "I32", "int32", "I16", "int16", "I8", "int8", "U8", "uint8",
            "BOOL", "bool");

    private Safetensors() {
    }

    /** Writes float32 tensors under TransformerLens names; metadata plus the config keys become __metadata__. */
    public static void write(Weights w, Map<String, String> metadata, Path target) {
        ObjectNode header = JSON.createObjectNode();
        ObjectNode meta = header.putObject("__metadata__");
        metadata.forEach((k, v) -> meta.put(Objects.requireNonNull(k), Objects.requireNonNull(v, k)));
        configMetadata(w.cfg).forEach(meta::put);
        long offset = 0;
        for (ParamLayout.Param p : w.layout.params()) {
            ObjectNode t = header.putObject(p.name());
            t.put("dtype", "F32");
            ArrayNode shape = t.putArray("shape");
            Arrays.stream(p.shape()).forEach(shape::add);
            t.putArray("data_offsets").add(offset).add(offset + 4L * p.size());
            offset += 4L * p.size();
        }
        byte[] json;
        try {
            json = JSON.writeValueAsBytes(header);
        } catch (JacksonException e) {
            throw new IllegalStateException(e);
        }
        // pad with spaces so the data starts 8-byte aligned, as the format's reference writer does
        int padded = (json.length + 7) / 8 * 8;
        AtomicFiles.write(target, out -> {
            ByteBuffer len = ByteBuffer.allocate(8).order(ByteOrder.LITTLE_ENDIAN).putLong(padded);
            out.write(len.array());
            out.write(json);
            for (int i = json.length; i < padded; i++) {
                out.write(' ');
            }
            for (ParamLayout.Param p : w.layout.params()) {
                ByteBuffer buf = ByteBuffer.allocate(4 * p.size()).order(ByteOrder.LITTLE_ENDIAN);
                buf.asFloatBuffer().put(w.data, p.offset(), p.size());
                out.write(buf.array());
            }
        });
    }

    /** The config as the string metadata {@link #write} stores and {@link #read} reads back. */
    public static Map<String, String> configMetadata(ModelConfig cfg) {
        Map<String, String> m = new LinkedHashMap<>();
        int[] v = {cfg.dVocab(), cfg.nCtx(), cfg.dModel(), cfg.nLayers(), cfg.nHeads(), cfg.dHead(), cfg.dMlp()};
        for (int i = 0; i < v.length; i++) {
            m.put(CONFIG_KEYS.get(i), String.valueOf(v[i]));
        }
        m.put("normalization", cfg.layerNorm() ? "LN" : "none");
        return m;
    }

    private record Span(String name, String dtype, long begin, long end) {
    }

    /** Reads and checks a whole file: every bound is checked against the header before data is allocated. */
    public static Checkpoint read(Path path) {
        Checkpoints.requireFile(path);
        String file = path.toString();
        String where = "safetensors file " + file;
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            long fileSize = ch.size();
            if (fileSize < 8) {
                throw new TrilensException(where + " is " + fileSize + " bytes long: expected at least 8 (the header "
                        + "length), then a JSON header and the tensor data");
            }
            long n = readFully(ch, 0, 8).order(ByteOrder.LITTLE_ENDIAN).getLong();
            if (n < 0 || n > MAX_HEADER_BYTES) {
                throw new TrilensException(where + " declares a huge header of " + Long.toUnsignedString(n)
                        + " bytes, expected at most " + MAX_HEADER_BYTES + ": not a safetensors file, or corrupted");
            }
            if (n > fileSize - 8) {
                throw new TrilensException(where + " declares a header of " + n + " bytes but only " + (fileSize - 8)
                        + " bytes follow the length: truncated, or not a safetensors file");
            }
            JsonNode header;
            try {
                header = JSON.readTree(readFully(ch, 8, (int) n).array());
            } catch (JacksonException e) {
                throw new TrilensException(where + ": header is not valid JSON (" + e.getOriginalMessage()
                        + "), expected a JSON object", e);
            }
            if (header == null || !header.isObject()) {
                throw new TrilensException(where + ": header is not a JSON object, expected "
                        + "{\"name\": {\"dtype\": ..., \"shape\": [...], \"data_offsets\": [begin, end]}, ...}");
            }
            long dataStart = 8 + n;
            Map<String, String> metadata = new LinkedHashMap<>();
            Map<String, StateDictSchema.Entry> entries = new LinkedHashMap<>();
            Map<String, Span> spans = new LinkedHashMap<>();
            for (Iterator<Map.Entry<String, JsonNode>> it = header.fields(); it.hasNext(); ) {
                Map.Entry<String, JsonNode> f = it.next();
                if (f.getKey().equals("__metadata__")) {
                    readMetadata(where, f.getValue(), metadata);
                } else {
                    Span s = readTensor(where, f.getKey(), f.getValue(), fileSize - dataStart, entries);
                    spans.put(s.name(), s);
                }
            }
            checkOverlap(where, spans.values());
            ModelConfig cfg = StateDictSchema.resolve(file, entries, configFrom(where, metadata));
            Weights w = new Weights(cfg);
            for (ParamLayout.Param p : w.layout.params()) {
                Span s = spans.get(p.name());
                int elem = TorchCheckpoint.elementSize(s.dtype());
                for (int done = 0; done < p.size(); ) {
                    int count = Math.min(p.size() - done, 1 << 20);
                    ByteBuffer buf = readFully(ch, dataStart + s.begin() + (long) done * elem, count * elem)
                            .order(ByteOrder.LITTLE_ENDIAN);
                    if (s.dtype().equals("float32")) {
                        buf.asFloatBuffer().get(w.data, p.offset() + done, count);
                    } else {
                        for (int i = 0; i < count; i++) {
                            w.data[p.offset() + done + i] = TorchCheckpoint.element(buf, s.dtype(), i);
                        }
                    }
                    done += count;
                }
            }
            return new Checkpoint(w, Collections.unmodifiableMap(metadata));
        } catch (IOException e) {
            throw new TrilensException("cannot read " + where + ": " + AtomicFiles.describe(e), e);
        }
    }

    private static void readMetadata(String where, JsonNode node, Map<String, String> out) {
        if (!node.isObject()) {
            throw new TrilensException(where + ": __metadata__ is not a JSON object, expected string keys and values");
        }
        for (Iterator<Map.Entry<String, JsonNode>> it = node.fields(); it.hasNext(); ) {
            Map.Entry<String, JsonNode> m = it.next();
            if (!m.getValue().isTextual()) {
                throw new TrilensException(where + ": __metadata__ '" + m.getKey() + "' is " + m.getValue()
                        + ", expected a string");
            }
            out.put(m.getKey(), m.getValue().textValue());
        }
    }

    private static Span readTensor(String where, String name, JsonNode t, long dataLen,
                                   Map<String, StateDictSchema.Entry> entries) {
        String tensor = where + ": tensor '" + name + "'";
        JsonNode dtypeNode = t.get("dtype");
        JsonNode shapeNode = t.get("shape");
        JsonNode offsetsNode = t.get("data_offsets");
        if (!t.isObject() || dtypeNode == null || !dtypeNode.isTextual() || shapeNode == null
                || !shapeNode.isArray() || offsetsNode == null || !offsetsNode.isArray()) {
            throw new TrilensException(tensor + " is " + abbreviate(t)
                    + ", expected {\"dtype\": ..., \"shape\": [...], \"data_offsets\": [begin, end]}");
        }
        String dtype = DTYPES.get(dtypeNode.textValue());
        if (dtype == null) {
            throw new TrilensException(tensor + " has dtype " + dtypeNode.textValue()
                    + ", expected F32 (or F16, BF16, F64; BOOL and integer types only for buffers)");
        }
        int[] shape = new int[shapeNode.size()];
        long numel = 1;
        for (int i = 0; i < shape.length; i++) {
            JsonNode d = shapeNode.get(i);
            if (!d.canConvertToInt() || !d.isIntegralNumber() || d.intValue() < 0) {
                throw new TrilensException(tensor + " has shape " + shapeNode
                        + ", expected non-negative integer dimensions");
            }
            shape[i] = d.intValue();
            // saturate rather than overflow: so large a tensor fails the byte-range check below anyway
            long cap = Long.MAX_VALUE / 8;
            numel = shape[i] == 0 ? 0 : numel > cap / shape[i] ? cap : numel * shape[i];
        }
        if (offsetsNode.size() != 2 || !offsetsNode.get(0).canConvertToLong() || !offsetsNode.get(1).canConvertToLong()
                || !offsetsNode.get(0).isIntegralNumber() || !offsetsNode.get(1).isIntegralNumber()) {
            throw new TrilensException(tensor + " has data_offsets " + offsetsNode + ", expected [begin, end]");
        }
        long begin = offsetsNode.get(0).longValue();
        long end = offsetsNode.get(1).longValue();
        if (begin < 0 || end < begin || end > dataLen) {
            throw new TrilensException(tensor + " has data_offsets [" + begin + ", " + end
                    + "] out of bounds: expected 0 <= begin <= end <= " + dataLen + " (the data size)");
        }
        long bytes = numel * TorchCheckpoint.elementSize(dtype);
        if (end - begin != bytes) {
            throw new TrilensException(tensor + " has data_offsets [" + begin + ", " + end + "] spanning "
                    + (end - begin) + " bytes, expected " + bytes + " for shape " + Arrays.toString(shape) + " of "
                    + dtypeNode.textValue());
        }
        entries.put(name, new StateDictSchema.Entry(dtype, shape));
        return new Span(name, dtype, begin, end);
    }

    private static void checkOverlap(String where, Iterable<Span> spans) {
        List<Span> sorted = new ArrayList<>();
        spans.forEach(s -> {
            if (s.end() > s.begin()) {
                sorted.add(s);
            }
        });
        sorted.sort((a, b) -> Long.compare(a.begin(), b.begin()));
        for (int i = 1; i < sorted.size(); i++) {
            Span a = sorted.get(i - 1);
            Span b = sorted.get(i);
            if (b.begin() < a.end()) {
                throw new TrilensException(where + ": tensors '" + a.name() + "' [" + a.begin() + ", " + a.end()
                        + ") and '" + b.name() + "' [" + b.begin() + ", " + b.end() + ") overlap, expected each "
                        + "tensor to have its own bytes");
            }
        }
    }

    /** The config the file states in its metadata, or null when it does not state one (then it is inferred). */
    private static ModelConfig configFrom(String where, Map<String, String> meta) {
        if (!meta.keySet().containsAll(CONFIG_KEYS)) {
            return null;
        }
        int[] v = new int[7];
        for (int i = 0; i < v.length; i++) {
            String key = CONFIG_KEYS.get(i);
            String s = meta.get(key).trim();
            try {
                v[i] = key.equals("d_mlp") && s.equalsIgnoreCase("none") ? 0 : Integer.parseInt(s);
            } catch (NumberFormatException e) {
                throw new TrilensException(where + ": metadata '" + key + "' is '" + s + "', expected an integer");
            }
        }
        String norm = meta.get("normalization").trim();
        if (!norm.equals("LN") && !norm.equalsIgnoreCase("none")) {
            throw new TrilensException(where + ": metadata 'normalization' is '" + norm
                    + "', expected 'LN' or 'none'");
        }
        try {
            return new ModelConfig(v[0], v[1], v[2], v[3], v[4], v[5], v[6], norm.equals("LN"));
        } catch (TrilensException e) {
            throw new TrilensException(where + ": metadata " + e.getMessage(), e);
        }
    }

    private static String abbreviate(JsonNode n) {
        String s = n.toString();
        return s.length() > 80 ? s.substring(0, 77) + "..." : s;
    }

    private static ByteBuffer readFully(FileChannel ch, long pos, int len) throws IOException {
        ByteBuffer buf = ByteBuffer.allocate(len);
        while (buf.hasRemaining()) {
            if (ch.read(buf, pos + buf.position()) < 0) {
                throw new EOFException("file ended at byte " + (pos + buf.position()));
            }
        }
        return buf.flip();
    }
}
