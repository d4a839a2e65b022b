// pgjdbc's ordinary workflow against Tempora: batch inserts with
// parameters, prepared statements reused past the server-side prepare
// threshold, typed results (timestamptz, numeric, NULL), transactions,
// SQLSTATEs, and DatabaseMetaData (getTables, getColumns).
//
// Usage: java -cp postgresql.jar:. JdbcWorkflow PORT
import java.math.BigDecimal;
import java.sql.*;
import java.time.OffsetDateTime;
import java.time.ZoneOffset;

public class JdbcWorkflow {
    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }

    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/postgres";
        try (Connection c = DriverManager.getConnection(url, "postgres", System.getenv("PGPASSWORD"))) {
            try (Statement s = c.createStatement()) {
                s.execute("CREATE TABLE j (time timestamptz NOT NULL, device text, v double precision, n numeric(10,2), k int)");
                try (ResultSet rs = s.executeQuery("SELECT create_hypertable('j', 'time')")) {
                    check(rs.next() && rs.getString(1).equals("(1,public,j,t)"), "create_hypertable");
                }
            }
            OffsetDateTime t0 = OffsetDateTime.of(2024, 1, 1, 0, 0, 0, 0, ZoneOffset.UTC);
            try (PreparedStatement ps = c.prepareStatement("INSERT INTO j VALUES (?, ?, ?, ?, ?)")) {
                for (int i = 0; i < 10; i++) {
                    ps.setObject(1, t0.plusMinutes(i));
                    ps.setString(2, i % 2 == 0 ? "a" : "b");
                    ps.setDouble(3, i * 0.5);
                    if (i == 3) ps.setNull(4, Types.NUMERIC); else ps.setBigDecimal(4, new BigDecimal("1.25"));
                    ps.setInt(5, i);
                    ps.addBatch();
                }
                int[] counts = ps.executeBatch();
                check(counts.length == 10, "batch");
            }
            // Prepared statement reused past the server-side prepare threshold.
            try (PreparedStatement ps = c.prepareStatement("SELECT count(*), sum(v) FROM j WHERE k >= ?")) {
                for (int i = 0; i < 7; i++) {
                    ps.setInt(1, i);
                    try (ResultSet rs = ps.executeQuery()) {
                        check(rs.next() && rs.getLong(1) == 10 - i, "count " + i);
                    }
                }
            }
            try (PreparedStatement ps = c.prepareStatement("SELECT time, device, v, n, k FROM j WHERE k = ?")) {
                ps.setInt(1, 3);
                try (ResultSet rs = ps.executeQuery()) {
                    check(rs.next(), "row");
                    check(rs.getObject(1, OffsetDateTime.class).isEqual(t0.plusMinutes(3)), "time");
                    check(rs.getString(2).equals("b"), "device");
                    check(rs.getDouble(3) == 1.5, "v");
                    check(rs.getBigDecimal(4) == null, "null numeric");
                    check(rs.getInt(5) == 3, "k");
                }
            }
            c.setAutoCommit(false);
            try (Statement s = c.createStatement()) {
                s.executeUpdate("INSERT INTO j (time, device) VALUES (now(), 'gone')");
                c.rollback();
                s.executeUpdate("INSERT INTO j (time, device) VALUES (now(), 'kept')");
                c.commit();
            }
            c.setAutoCommit(true);
            try (Statement s = c.createStatement();
                 ResultSet rs = s.executeQuery("SELECT string_agg(device, ',') FROM j WHERE device IN ('gone', 'kept')")) {
                check(rs.next() && rs.getString(1).equals("kept"), "transaction");
            }
            try (Statement s = c.createStatement()) {
                s.executeQuery("SELECT * FROM nope");
                check(false, "error expected");
            } catch (SQLException e) {
                check(e.getSQLState().equals("42P01"), "sqlstate " + e.getSQLState());
            }
            DatabaseMetaData md = c.getMetaData();
            try (ResultSet rs = md.getTables(null, "public", "j", new String[] {"TABLE"})) {
                check(rs.next() && rs.getString("TABLE_NAME").equals("j"), "getTables");
            }
            try (ResultSet rs = md.getColumns(null, "public", "j", null)) {
                StringBuilder cols = new StringBuilder();
                while (rs.next()) cols.append(rs.getString("COLUMN_NAME")).append(':').append(rs.getString("TYPE_NAME")).append(' ');
                check(cols.toString().equals("time:timestamptz device:text v:float8 n:numeric k:int4 "), "getColumns " + cols);
            }
            System.out.println("jdbc workflow ok: " + md.getDatabaseProductName() + " " + md.getDatabaseProductVersion());
        }
    }
}
