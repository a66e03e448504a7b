import java.sql.*;

/** JDBC (Debian's libpostgresql-jdbc-java) against weir serve: Weir's commands, a parameterised
 *  query, SHOW JOBS and an error's SQLSTATE. Arguments: port, path of sql/data/par.csv. */
public class JdbcCheck {
    public static void main(String[] args) throws Exception {
        String url = "jdbc:postgresql://127.0.0.1:" + args[0] + "/weir?user=weir&sslmode=disable";
        try (Connection conn = DriverManager.getConnection(url); Statement st = conn.createStatement()) {
            st.execute("CREATE SOURCE ev (k VARCHAR, v BIGINT, ts TIMESTAMP, WATERMARK FOR ts AS ts - INTERVAL '1' SECOND) "
                + "WITH (connector = 'file', path = '" + args[1] + "', format = 'csv')");
            st.execute("CREATE TABLE t (k VARCHAR, window_start TIMESTAMP, window_end TIMESTAMP, cnt BIGINT, total BIGINT, hi BIGINT, PRIMARY KEY (k, window_start))");
            st.execute("CREATE JOB j WITH ('parallelism' = '2') AS INSERT INTO t SELECT k, window_start, window_end, COUNT(*), SUM(v), MAX(v) "
                + "FROM TUMBLE(ev, ts, INTERVAL '20' SECOND) GROUP BY k, window_start, window_end");
            st.execute("WAIT JOB j");
            // sql/parallelism.slt, worked out by hand: p1 has (1, 2), (2, 16), (4, 120).
            StringBuilder got = new StringBuilder();
            try (PreparedStatement ps = conn.prepareStatement("SELECT cnt, total FROM t WHERE k = ? ORDER BY window_start")) {
                ps.setString(1, "p1");
                try (ResultSet rs = ps.executeQuery()) {
                    while (rs.next()) got.append(rs.getLong(1)).append(':').append(rs.getLong(2)).append(' ');
                }
            }
            check(got.toString().equals("1:2 2:16 4:120 "), "rows: " + got);
            try (ResultSet rs = st.executeQuery("SHOW JOBS")) {
                check(rs.next() && rs.getString("status").equals("FINISHED"), "SHOW JOBS");
            }
            try {
                st.execute("SELEC 1");
                check(false, "no error for bad SQL");
            } catch (SQLException e) {
                check("42601".equals(e.getSQLState()), "SQLSTATE " + e.getSQLState());
            }
        }
        System.out.println("jdbc: ok");
    }

    static void check(boolean ok, String what) {
        if (!ok) throw new AssertionError(what);
    }
}
