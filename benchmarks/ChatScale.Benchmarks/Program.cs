using BenchmarkDotNet.Running;

// Run all:   dotnet run -c Release --project benchmarks/ChatScale.Benchmarks -- --filter '*'
// One class: dotnet run -c Release --project benchmarks/ChatScale.Benchmarks -- --filter '*LocalFanOut*'
BenchmarkSwitcher.FromAssembly(typeof(Program).Assembly).Run(args);
