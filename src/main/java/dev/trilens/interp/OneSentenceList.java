package dev.trilens.interp;

import com.fasterxml.jackson.core.JsonGenerator;
import com.fasterxml.jackson.databind.SerializerProvider;
import com.fasterxml.jackson.databind.ser.std.StdSerializer;
import java.io.IOException;

/**
 * Writes a record's one-sentence summary the way every summary in analysis.json is written, as a list of strings,
 * so that scripts read one shape; the Java side keeps its single sentence.
 */
public final class OneSentenceList extends StdSerializer<String> {
    public OneSentenceList() {
        super(String.class);
    }

    @Override
    public void serialize(String sentence, JsonGenerator gen, SerializerProvider provider) throws IOException {
        gen.writeStartArray();
        gen.writeString(sentence);
        gen.writeEndArray();
    }
}
