// tally-server: parses the command line and runs the server until shutdown.
import Glibc
import TallyServer

exit(ServerMain.run(arguments: Array(CommandLine.arguments.dropFirst())))
