package dev.trilens.sweep;

import java.io.IOException;
import java.nio.file.Path;
import java.util.List;
import org.apache.hadoop.conf.Configuration;
import org.apache.parquet.example.data.Group;
import org.apache.parquet.example.data.simple.SimpleGroupFactory;
import org.apache.parquet.hadoop.ParquetWriter;
import org.apache.parquet.hadoop.example.ExampleParquetWriter;
import org.apache.parquet.hadoop.metadata.CompressionCodecName;
import org.apache.parquet.io.LocalOutputFile;
import org.apache.parquet.schema.LogicalTypeAnnotation;
import org.apache.parquet.schema.MessageType;
import org.apache.parquet.schema.PrimitiveType.PrimitiveTypeName;
import org.apache.parquet.schema.Types;

/**
 * results.parquet: the table as one Parquet file, written by the driver with Parquet's own library (the one Spark
 * writes with), typed column by column: what Spark, pandas or DuckDB read. The driver holds the whole table, so a
 * Spark SQL job (seconds of start-up for a few hundred rows, and a folder of part files) would add nothing.
 */
final class ParquetTable {
    private ParquetTable() {
    }

    static void write(SweepTable table, Path file) throws IOException {
        List<String> columns = table.columns();
        RunResult first = table.results().get(0);
        Types.MessageTypeBuilder schema = Types.buildMessage();
        for (String c : columns) {
            Object v = table.value(first, c);
            if (v instanceof Integer) {
                schema.required(PrimitiveTypeName.INT32).named(c);
            } else if (v instanceof Long) {
                schema.required(PrimitiveTypeName.INT64).named(c);
            } else if (v instanceof Double) {
                schema.required(PrimitiveTypeName.DOUBLE).named(c);
            } else if (v instanceof Boolean) {
                schema.required(PrimitiveTypeName.BOOLEAN).named(c);
            } else {
                schema.required(PrimitiveTypeName.BINARY).as(LogicalTypeAnnotation.stringType()).named(c);
            }
        }
        MessageType type = schema.named("results");
        SimpleGroupFactory rows = new SimpleGroupFactory(type);
        try (ParquetWriter<Group> out = ExampleParquetWriter.builder(new LocalOutputFile(file)).withType(type)
                .withConf(new Configuration(false)).withCompressionCodec(CompressionCodecName.UNCOMPRESSED).build()) {
            for (RunResult r : table.results()) {
                Group g = rows.newGroup();
                for (String c : columns) {
                    Object v = table.value(r, c);
                    if (v instanceof Integer i) {
                        g.append(c, i);
                    } else if (v instanceof Long l) {
                        g.append(c, l);
                    } else if (v instanceof Double d) {
                        g.append(c, d);
                    } else if (v instanceof Boolean b) {
                        g.append(c, b);
                    } else {
                        g.append(c, String.valueOf(v));
                    }
                }
                out.write(g);
            }
        }
    }
}
