fn main() -> std::process::ExitCode {
    mdrun::cli::main()
}
