using ChatScale.Samples.Chat;

await ChatApp.Build(args).RunAsync();
