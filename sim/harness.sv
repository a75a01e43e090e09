// Simulation-only harness around the generated EIE top level (module eie_top).
//
// It is never synthesised. It gives the cocotb testbench two ways to move the
// host command stream:
//
//   * Python path (fast_mode = 0): host_in / host_out are wired straight to
//     the py_in_* / py_out_* ports, which the testbench drives cycle by cycle
//     (random idle and back-pressure from Python's random module).
//
//   * Fast path (fast_mode = 1): the testbench writes the whole word stream of a
//     transaction into the file eie_fast_in.hex (one 32-bit hex word a line, in
//     the simulator's working directory) and pulses fast_start. The harness
//     reads the file into in_mem ($readmemh), offers one word per cycle on
//     host_in (with pseudo-random idle cycles from an LFSR, fast_idle/256 of
//     the time) and captures host_out into out_mem (with pseudo-random
//     back-pressure, fast_stall/256 of the time). When fast_in_count words are
//     sent and fast_out_count words captured, or nothing moved for
//     fast_timeout cycles, it writes the captured words to eie_fast_out.hex
//     ($writememh) and raises fast_done. Python only waits on fast_done, so a
//     load of hundreds of thousands of words runs at Verilator speed.
//
// host_in.valid never drops before its word is taken (stream rule): an idle
// cycle is only inserted between words.
//
// It runs under Verilator and under Icarus Verilog (iverilog -g2012); see
// sim/runner.py (simulator="verilator" | "icarus").
module eie_sim #(
    parameter int IN_ADDR_BITS = 21,
    parameter int OUT_ADDR_BITS = 16
) (
    input  logic        clk,
    input  logic        rst,

    input  logic [31:0] py_in_payload,
    input  logic        py_in_valid,
    output logic        py_in_ready,
    output logic [31:0] py_out_payload,
    output logic        py_out_valid,
    input  logic        py_out_ready,

    input  logic        fast_mode,
    input  logic        fast_start,
    input  logic        fast_keep,       // with fast_start: append to the words captured so far
    input  logic [31:0] fast_in_count,
    input  logic [31:0] fast_out_count,
    input  logic [31:0] fast_timeout,
    input  logic [7:0]  fast_idle,
    input  logic [7:0]  fast_stall,
    input  logic [31:0] fast_seed,
    output logic        fast_busy,
    output logic        fast_done,
    output logic        fast_timed_out,
    output logic [31:0] fast_sent,
    output logic [31:0] fast_captured,
    output logic [31:0] in_capacity,
    output logic [31:0] out_capacity,

    output logic        running,
    output logic        error
);
    localparam int IN_DEPTH = 1 << IN_ADDR_BITS;
    localparam int OUT_DEPTH = 1 << OUT_ADDR_BITS;

    assign in_capacity = IN_DEPTH;
    assign out_capacity = OUT_DEPTH;

    logic [31:0] in_mem [0:IN_DEPTH-1];
    logic [31:0] out_mem [0:OUT_DEPTH-1];

    logic [31:0] host_in_payload, host_out_payload;
    logic        host_in_valid, host_in_ready, host_out_valid, host_out_ready;

    eie_top dut (
        .clk(clk),
        .rst(rst),
        .host_in__payload(host_in_payload),
        .host_in__valid(host_in_valid),
        .host_in__ready(host_in_ready),
        .host_out__payload(host_out_payload),
        .host_out__valid(host_out_valid),
        .host_out__ready(host_out_ready),
        .running(running),
        .error(error)
    );

    // -- fast-path state -------------------------------------------------------
    logic [31:0] lfsr;
    logic        offering;       // host_in.valid of the fast path
    logic        dump;           // write eie_fast_out.hex next cycle, then raise fast_done
    logic [31:0] quiet;          // cycles since the last handshake
    logic        idle_draw, stall_draw;
    logic        in_fire, out_fire;

    assign idle_draw  = lfsr[7:0] < fast_idle;
    assign stall_draw = lfsr[23:16] < fast_stall;

    // The word on offer is read by a continuous assignment rather than inside the
    // always_comb: Icarus Verilog makes an always_comb sensitive to every word of an
    // array it reads, which takes minutes to elaborate for the 2M-word in_mem.
    logic [31:0] fast_word;
    assign fast_word = in_mem[fast_sent[IN_ADDR_BITS-1:0]];

    always_comb begin
        if (fast_mode) begin
            host_in_payload = fast_word;
            host_in_valid   = offering;
            host_out_ready  = fast_busy && !stall_draw;
            py_in_ready     = 1'b0;
            py_out_valid    = 1'b0;
        end else begin
            host_in_payload = py_in_payload;
            host_in_valid   = py_in_valid;
            host_out_ready  = py_out_ready;
            py_in_ready     = host_in_ready;
            py_out_valid    = host_out_valid;
        end
        py_out_payload = host_out_payload;
    end

    assign in_fire  = fast_mode && offering && host_in_ready;
    assign out_fire = fast_mode && host_out_ready && host_out_valid;

    always_ff @(posedge clk) begin
        // Galois LFSR, x^32 + x^22 + x^2 + x + 1
        lfsr <= {1'b0, lfsr[31:1]} ^ (lfsr[0] ? 32'h80200003 : 32'h0);
        if (rst) begin
            lfsr <= fast_seed | 32'h1;
            fast_busy <= 1'b0;
            fast_done <= 1'b0;
            fast_timed_out <= 1'b0;
            fast_sent <= 32'h0;
            fast_captured <= 32'h0;
            offering <= 1'b0;
            dump <= 1'b0;
            quiet <= 32'h0;
        end else if (fast_start) begin
            if (fast_in_count != 0)
                $readmemh("eie_fast_in.hex", in_mem, 0, fast_in_count - 1);
            fast_busy <= 1'b1;
            fast_done <= 1'b0;
            fast_timed_out <= 1'b0;
            fast_sent <= 32'h0;
            if (!fast_keep)
                fast_captured <= 32'h0;
            offering <= 1'b0;
            dump <= 1'b0;
            quiet <= 32'h0;
        end else if (dump) begin
            if (fast_captured != 0)
                $writememh("eie_fast_out.hex", out_mem, 0, fast_captured - 1);
            dump <= 1'b0;
            fast_done <= 1'b1;
        end else if (fast_busy) begin
            // host_in: keep offering until taken; between words, idle at random.
            if (in_fire) begin
                fast_sent <= fast_sent + 1;
                offering <= (fast_sent + 1 < fast_in_count) && !idle_draw;
            end else if (!offering) begin
                offering <= (fast_sent < fast_in_count) && !idle_draw;
            end
            if (out_fire) begin
                out_mem[fast_captured[OUT_ADDR_BITS-1:0]] <= host_out_payload;
                fast_captured <= fast_captured + 1;
            end
            quiet <= (in_fire || out_fire) ? 32'h0 : quiet + 1;
            if ((fast_sent + (in_fire ? 1 : 0)) == fast_in_count &&
                (fast_captured + (out_fire ? 1 : 0)) >= fast_out_count) begin
                fast_busy <= 1'b0;
                offering <= 1'b0;
                dump <= 1'b1;
            end else if (quiet >= fast_timeout) begin
                fast_busy <= 1'b0;
                offering <= 1'b0;
                fast_timed_out <= 1'b1;
                dump <= 1'b1;
            end
        end
    end
endmodule
