; Inno Setup 6.3+ script: a Windows installer around the PyInstaller folder dist\mspbill\.
; UNTESTED here (no Windows machine): see packaging/README.md, "Windows (x64)", step 4.
;
;   iscc /DAppVersion=0.1.0 packaging\mspbill.iss        -> dist\mspbill-0.1.0-setup.exe
;
; Paths are relative to this file's folder.  The office's data (database, backups, logs,
; settings) lives in the user's own folders (platformdirs), never under {app}: uninstalling
; removes the program and leaves the data.

#ifndef AppVersion
  #error Pass the version: iscc /DAppVersion=X.Y.Z packaging\mspbill.iss
#endif

[Setup]
; Keep this AppId for every release: Windows recognises upgrades by it.
AppId={{950C3D26-AA9B-4711-8F0E-7083A5B286ED}
AppName=mspbill
AppVersion={#AppVersion}
AppVerName=mspbill {#AppVersion}
AppPublisher=mspbill
DefaultDirName={autopf}\mspbill
DefaultGroupName=mspbill
DisableProgramGroupPage=yes
UninstallDisplayIcon={app}\mspbill.exe
OutputDir=..\dist
OutputBaseFilename=mspbill-{#AppVersion}-setup
Compression=lzma2
SolidCompression=yes
WizardStyle=modern
ArchitecturesAllowed=x64compatible
ArchitecturesInstallIn64BitMode=x64compatible
; Install for all users (Program Files) or, without administrator rights, for the current user.
PrivilegesRequiredOverridesAllowed=dialog

[Tasks]
Name: "desktopicon"; Description: "{cm:CreateDesktopIcon}"; GroupDescription: "{cm:AdditionalIcons}"; Flags: unchecked

[Files]
Source: "..\dist\mspbill\*"; DestDir: "{app}"; Flags: ignoreversion recursesubdirs createallsubdirs

[Icons]
Name: "{group}\mspbill"; Filename: "{app}\mspbill.exe"
Name: "{autodesktop}\mspbill"; Filename: "{app}\mspbill.exe"; Tasks: desktopicon

[Run]
Filename: "{app}\mspbill.exe"; Description: "{cm:LaunchProgram,mspbill}"; Flags: nowait postinstall skipifsilent
