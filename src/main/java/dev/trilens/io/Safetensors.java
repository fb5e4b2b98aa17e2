package dev.trilens.io;

import com.fasterxml.jackson.core.JacksonException;
import com.fasterxml.jackson.core.JsonParser;
import com.fasterxml.jackson.core.JsonToken;
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
import java.util.Collection;
import java.util.Collections;
import java.util.Comparator;
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

    /** Writes headers; reading parses them as a stream (see {@link #readHeader}). */
    private static final ObjectMapper JSON = new ObjectMapper();
    private static final List<String> CONFIG_KEYS =
            List.of("d_vocab", "n_ctx", "d_model", "n_layers", "n_heads", "d_head", "d_mlp", "normalization");
    private static final Map<String, String> DTYPES = Map.of("F32", "float32", "F64", "float64", "F16", "float16",
            "BF16", "bfloat16", "I64", "int64", "I32", "int32", "I16", "int16", "I8", "int8", "U8", "uint8",
            "BOOL", "bool");

    private Safetensors() {
    }

    /** Writes float32 tensors under TransformerLens names; metadata plus the config keys become __metadata__. */
    public static void write(Weights w, Map<String, String> metadata, Path target) {
        Map<String, String> meta = new LinkedHashMap<>(metadata);
        configMetadata(w.cfg).forEach(meta::put);
        List<F32> tensors = new ArrayList<>();
        for (ParamLayout.Param p : w.layout.params()) {
            tensors.add(new F32(p.name(), p.shape(), w.data, p.offset(), p.size()));
        }
        writeF32(tensors, meta, target);
    }

    /** One float32 tensor to write: its name and shape, and data[offset, offset + size) holding its values. */
    public record F32(String name, int[] shape, float[] data, int offset, int size) {
    }

    /**
     * The one writer of safetensors files: the tensors in the given order, each string of metadata under
     * __metadata__, atomically (a reader never sees half a file).
     */
    public static void writeF32(List<F32> tensors, Map<String, String> metadata, Path target) {
        ObjectNode header = JSON.createObjectNode();
        ObjectNode meta = header.putObject("__metadata__");
        metadata.forEach((k, v) -> meta.put(Objects.requireNonNull(k), Objects.requireNonNull(v, k)));
        long offset = 0;
        for (F32 t : tensors) {
            ObjectNode entry = header.putObject(t.name());
            entry.put("dtype", "F32");
            ArrayNode shape = entry.putArray("shape");
            Arrays.stream(t.shape()).forEach(shape::add);
            entry.putArray("data_offsets").add(offset).add(offset + 4L * t.size());
            offset += 4L * t.size();
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
            for (F32 t : tensors) {
                ByteBuffer buf = ByteBuffer.allocate(4 * t.size()).order(ByteOrder.LITTLE_ENDIAN);
                buf.asFloatBuffer().put(t.data(), t.offset(), t.size());
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

    /** Beyond the layers a state dict can name (see {@link ParamLayout#MAX_LAYERS}), a header is not one. */
    static final int MAX_TENSORS = 200_000;
    static final int MAX_METADATA = 100_000;
    /** torch's limit on a tensor's dimensions. */
    static final int MAX_RANK = 64;

    /**
     * One tensor of a safetensors header: torch's dtype name (e.g. "float32"), shape, and its bytes [begin, end)
     * within the data section.
     */
    public record TensorInfo(String name, String dtype, int[] shape, long begin, long end) {
        /** Element count; the header check has made sure it matches end - begin. */
        public long numel() {
            return (end - begin) / TorchCheckpoint.elementSize(dtype);
        }
    }

    /** A checked header: the string metadata, the tensors in file order, and where the data section starts. */
    public record Header(Map<String, String> metadata, Map<String, TensorInfo> tensors, long dataStart) {
    }

    /** Reads and checks a whole file: every bound is checked against the header before data is allocated. */
    public static Checkpoint read(Path path) {
        Checkpoints.requireFile(path);
        String file = path.toString();
        String where = "safetensors file " + file;
        try (FileChannel ch = FileChannel.open(path, StandardOpenOption.READ)) {
            Header h = readHeader(ch, where);
            Map<String, StateDictSchema.Entry> entries = new LinkedHashMap<>();
            h.tensors().forEach((k, t) -> entries.put(k, new StateDictSchema.Entry(t.dtype(), t.shape())));
            ModelConfig cfg = StateDictSchema.resolve(file, entries, configFrom(where, h.metadata()));
            Weights w = new Weights(cfg);
            for (ParamLayout.Param p : w.layout.params()) {
                TensorInfo t = h.tensors().get(p.name());
                readFloats(ch, h, t, w.data, p.offset());
            }
            return new Checkpoint(w, Collections.unmodifiableMap(h.metadata()));
        } catch (IOException e) {
            throw new TrilensException("cannot read " + where + ": " + AtomicFiles.describe(e), e);
        }
    }

    /** Reads tensor t's values, converted to float, into out[at..at+numel). */
    public static void readFloats(FileChannel ch, Header h, TensorInfo t, float[] out, int at) throws IOException {
        int elem = TorchCheckpoint.elementSize(t.dtype());
        int size = Math.toIntExact(t.numel());
        for (int done = 0; done < size; ) {
            int count = Math.min(size - done, 1 << 20);
            ByteBuffer buf = readFully(ch, h.dataStart() + t.begin() + (long) done * elem, count * elem)
                    .order(ByteOrder.LITTLE_ENDIAN);
            if (t.dtype().equals("float32")) {
                buf.asFloatBuffer().get(out, at + done, count);
            } else {
                for (int i = 0; i < count; i++) {
                    out[at + done + i] = TorchCheckpoint.element(buf, t.dtype(), i);
                }
            }
            done += count;
        }
    }

    /**
     * The header of the safetensors file open in ch, checked as the format requires: a JSON object of tensors and
     * string metadata, each tensor's bytes within the file and exactly its shape's size, and the tensors together
     * filling the data section without gap or overlap. It is parsed as a stream of tokens, so a hostile header
     * costs memory in proportion to the tensors it names, not to its nesting or its number of values.
     */
    public static Header readHeader(FileChannel ch, String where) throws IOException {
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
        long dataStart = 8 + n;
        long dataLen = fileSize - dataStart;
        Map<String, String> metadata = new LinkedHashMap<>();
        Map<String, TensorInfo> tensors = new LinkedHashMap<>();
        try (JsonParser p = JSON.getFactory().createParser(readFully(ch, 8, (int) n).array())) {
            p.enable(JsonParser.Feature.STRICT_DUPLICATE_DETECTION);
            if (p.nextToken() != JsonToken.START_OBJECT) {
                throw new TrilensException(where + ": header is not a JSON object, expected "
                        + "{\"name\": {\"dtype\": ..., \"shape\": [...], \"data_offsets\": [begin, end]}, ...}");
            }
            while (p.nextToken() == JsonToken.FIELD_NAME) {
                String name = p.currentName();
                p.nextToken();
                if (name.equals("__metadata__")) {
                    readMetadata(where, p, metadata);
                } else {
                    if (tensors.size() >= MAX_TENSORS) {
                        throw new TrilensException(where + ": header names more than " + MAX_TENSORS
                                + " tensors, expected a TransformerLens state dict");
                    }
                    tensors.put(name, readTensor(where, name, p, dataLen));
                }
            }
            if (p.nextToken() != null) {
                throw new TrilensException(where + ": header has text after its JSON object, expected one object");
            }
        } catch (JacksonException e) {
            throw new TrilensException(where + ": header is not valid JSON (" + FileText.show(e.getOriginalMessage())
                    + "), expected a JSON object", e);
        }
        checkContiguous(where, tensors.values(), dataLen);
        return new Header(metadata, tensors, dataStart);
    }

    private static void readMetadata(String where, JsonParser p, Map<String, String> out) throws IOException {
        if (p.currentToken() != JsonToken.START_OBJECT) {
            throw new TrilensException(where + ": __metadata__ is " + shown(p) + ", expected a JSON object of "
                    + "string keys and values");
        }
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String key = p.currentName();
            if (p.nextToken() != JsonToken.VALUE_STRING) {
                throw new TrilensException(where + ": __metadata__ '" + FileText.show(key) + "' is " + shown(p)
                        + ", expected a string");
            }
            if (out.size() >= MAX_METADATA) {
                throw new TrilensException(where + ": __metadata__ has more than " + MAX_METADATA + " entries, "
                        + "expected a few strings");
            }
            out.put(key, p.getText());
        }
    }

    private static TensorInfo readTensor(String where, String name, JsonParser p, long dataLen) throws IOException {
        String tensor = where + ": tensor '" + FileText.show(name) + "'";
        String expected = ", expected {\"dtype\": ..., \"shape\": [...], \"data_offsets\": [begin, end]}";
        if (p.currentToken() != JsonToken.START_OBJECT) {
            throw new TrilensException(tensor + " is " + shown(p) + expected);
        }
        String dtypeName = null;
        List<String> shapeText = null;
        List<String> offsetText = null;
        while (p.nextToken() == JsonToken.FIELD_NAME) {
            String field = p.currentName();
            JsonToken value = p.nextToken();
            switch (field) {
                case "dtype" -> {
                    if (value != JsonToken.VALUE_STRING) {
                        throw new TrilensException(tensor + " has dtype " + shown(p) + ", expected a string");
                    }
                    dtypeName = p.getText();
                }
                case "shape" -> shapeText = numbers(tensor, "shape", p, MAX_RANK);
                case "data_offsets" -> offsetText = numbers(tensor, "data_offsets", p, 2);
                default -> p.skipChildren(); // safetensors allows no other field, but extra ones harm nothing
            }
        }
        if (dtypeName == null || shapeText == null || offsetText == null) {
            throw new TrilensException(tensor + " lacks " + (dtypeName == null ? "dtype" : shapeText == null
                    ? "shape" : "data_offsets") + expected);
        }
        String dtype = DTYPES.get(dtypeName);
        if (dtype == null) {
            throw new TrilensException(tensor + " has dtype " + FileText.show(dtypeName)
                    + ", expected F32 (or F16, BF16, F64; BOOL and integer types only for buffers)");
        }
        int[] shape = new int[shapeText.size()];
        long numel = 1;
        for (int i = 0; i < shape.length; i++) {
            long d = parseLong(shapeText.get(i));
            if (d < 0 || d > Integer.MAX_VALUE) {
                throw new TrilensException(tensor + " has shape " + "[" + String.join(",", shapeText) + "]"
                        + ", expected non-negative integer dimensions");
            }
            shape[i] = (int) d;
            // saturate rather than overflow: so large a tensor fails the byte-range check below anyway
            long cap = Long.MAX_VALUE / 8;
            numel = shape[i] == 0 ? 0 : numel > cap / shape[i] ? cap : numel * shape[i];
        }
        long begin = offsetText.size() == 2 ? parseLong(offsetText.get(0)) : -1;
        long end = offsetText.size() == 2 ? parseLong(offsetText.get(1)) : -1;
        if (begin == Long.MIN_VALUE || end == Long.MIN_VALUE || offsetText.size() != 2) {
            throw new TrilensException(tensor + " has data_offsets [" + String.join(",", offsetText)
                    + "], expected [begin, end]");
        }
        if (begin < 0 || end < begin || end > dataLen) {
            throw new TrilensException(tensor + " has data_offsets [" + begin + ", " + end
                    + "] out of bounds: expected 0 <= begin <= end <= " + dataLen + " (the data size)");
        }
        long bytes = numel * TorchCheckpoint.elementSize(dtype);
        if (end - begin != bytes) {
            throw new TrilensException(tensor + " has data_offsets [" + begin + ", " + end + "] spanning "
                    + (end - begin) + " bytes, expected " + bytes + " for shape " + Arrays.toString(shape) + " of "
                    + dtypeName);
        }
        return new TensorInfo(name, dtype, shape, begin, end);
    }

    /** An array of at most max integers, as their text; anything else is refused. */
    private static List<String> numbers(String tensor, String field, JsonParser p, int max) throws IOException {
        if (p.currentToken() != JsonToken.START_ARRAY) {
            throw new TrilensException(tensor + " has " + field + " " + shown(p) + ", expected an array of integers");
        }
        List<String> out = new ArrayList<>();
        while (p.nextToken() != JsonToken.END_ARRAY) {
            if (out.size() >= max) {
                throw new TrilensException(tensor + " has " + field + " of more than " + max + " values");
            }
            out.add(p.currentToken().isNumeric() ? p.getText() : shown(p));
            p.skipChildren();
        }
        return out;
    }

    /** The integer in text, or Long.MIN_VALUE if it is not one (no valid size or offset is negative). */
    private static long parseLong(String text) {
        try {
            return Long.parseLong(text);
        } catch (NumberFormatException e) {
            return Long.MIN_VALUE;
        }
    }

    /** The current value, short and safe to print: scalars as they are, containers by kind only. */
    private static String shown(JsonParser p) throws IOException {
        JsonToken t = p.currentToken();
        if (t == JsonToken.START_OBJECT) {
            return "an object";
        } else if (t == JsonToken.START_ARRAY) {
            return "an array";
        } else if (t == JsonToken.VALUE_STRING) {
            return "\"" + FileText.show(p.getText()) + "\"";
        }
        return t == null ? "nothing" : FileText.show(p.getText());
    }

    /** The format's rule: the tensors' byte ranges, in order, tile the data section exactly. */
    private static void checkContiguous(String where, Collection<TensorInfo> tensors, long dataLen) {
        List<TensorInfo> sorted = new ArrayList<>(tensors);
        sorted.sort(Comparator.comparingLong(TensorInfo::begin).thenComparingLong(TensorInfo::end));
        long at = 0;
        TensorInfo prev = null;
        for (TensorInfo t : sorted) {
            if (t.begin() < at) {
                throw new TrilensException(where + ": tensors '" + FileText.show(prev.name()) + "' [" + prev.begin()
                        + ", " + prev.end() + ") and '" + FileText.show(t.name()) + "' [" + t.begin() + ", " + t.end()
                        + ") overlap, expected each tensor to have its own bytes");
            }
            if (t.begin() > at) {
                throw new TrilensException(where + ": no tensor holds bytes [" + at + ", " + t.begin() + ") of the "
                        + "data section" + (prev == null ? "" : ", after '" + FileText.show(prev.name()) + "'")
                        + ": expected the tensors' data to be contiguous, as the format requires");
            }
            at = t.end();
            prev = t;
        }
        if (at != dataLen) {
            throw new TrilensException(where + ": the data section has " + (dataLen - at) + " bytes after its last "
                    + "tensor: expected the tensors' data to fill it, as the format requires");
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
                throw new TrilensException(where + ": metadata '" + key + "' is '" + FileText.show(s)
                        + "', expected an integer");
            }
        }
        String norm = meta.get("normalization").trim();
        if (!norm.equals("LN") && !norm.equalsIgnoreCase("none")) {
            throw new TrilensException(where + ": metadata 'normalization' is '" + FileText.show(norm)
                    + "', expected 'LN' or 'none'");
        }
        try {
            return new ModelConfig(v[0], v[1], v[2], v[3], v[4], v[5], v[6], norm.equals("LN"));
        } catch (TrilensException e) {
            throw new TrilensException(where + ": metadata " + e.getMessage(), e);
        }
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
